"""BYOL pretraining throughput: sslseg's `BYOL` vs lightly's BYOL pieces, side by side in one process.

One training step = forward of both views through online and target networks, backward, optimiser step, EMA update
(the augmentation is not timed: the views are fixed random tensors). Both models use the same backbone architecture
(torchvision ResNet; ours through `sslseg.models.backbones.build_backbone`, lightly's as in its BYOL example:
`nn.Sequential(*resnet.children()[:-1])`), the same initial weights, head sizes, batch, resolution and optimiser
(torch SGD, momentum 0.9). Steps are interleaved ours/lightly (the order alternating each round) and the median of
`--steps` timed steps after `--warmup` is reported (and the fastest step, the least disturbed on a shared machine). FLOPs of one step come from `torch.utils.flop_counter`; the fp32
matmul peak is a large sgemm measured in the same run.

    .venv/bin/python bench/bench_byol.py [--backbones resnet18,resnet50] [--batch 16] [--size 64] [--steps 10]

Writes bench/results/byol.json and prints a table.
"""
from __future__ import annotations
import argparse, copy, json, os, platform, statistics, sys, time
from pathlib import Path

import torch
from torch import nn
import torchvision
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from sslseg.core import atomic_write_json, package_versions, git_info  # noqa: E402
from sslseg.models.backbones import build_backbone  # noqa: E402
from sslseg.pretext.byol import BYOL  # noqa: E402

from lightly.loss import NegativeCosineSimilarity  # noqa: E402
from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead  # noqa: E402
from lightly.models.utils import deactivate_requires_grad, update_momentum  # noqa: E402
from lightly.utils.scheduler import cosine_schedule  # noqa: E402


class LightlyBYOL(nn.Module):
    "lightly's BYOL example model (examples/pytorch/byol.py)."
    def __init__(self, backbone, in_dim, hidden, out):
        super().__init__()
        self.backbone = backbone
        self.projection_head = BYOLProjectionHead(in_dim, hidden, out)
        self.prediction_head = BYOLPredictionHead(out, hidden, out)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def forward(self, x):
        return self.prediction_head(self.projection_head(self.backbone(x).flatten(start_dim=1)))

    def forward_momentum(self, x):
        return self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1)).detach()


def make_pair(name, hidden, out, seed=0):
    torch.manual_seed(seed)
    ours = BYOL(build_backbone(name), hidden_dim=hidden, out_dim=out)
    tv = getattr(torchvision.models, name)(weights=None)
    missing, unexpected = tv.load_state_dict(ours.backbone.state_dict(), strict=False)
    assert not unexpected and set(missing) == {'fc.weight', 'fc.bias'}, (missing, unexpected)  # same init weights
    lt = LightlyBYOL(nn.Sequential(*list(tv.children())[:-1]), ours.encoder.out_dim, hidden, out)
    return ours, lt


def ours_step(net, opt, x1, x2, k, K):
    out = net.training_step((x1, x2))
    opt.zero_grad(set_to_none=True); out['loss'].backward(); opt.step()
    net.on_step_end(k, K)
    return out['loss']


def lightly_step(model, opt, crit, x0, x1, k, K):
    m = cosine_schedule(k, K, 0.996, 1)
    update_momentum(model.backbone, model.backbone_momentum, m=m)
    update_momentum(model.projection_head, model.projection_head_momentum, m=m)
    p0, z0 = model(x0), model.forward_momentum(x0)
    p1, z1 = model(x1), model.forward_momentum(x1)
    loss = 0.5 * (crit(p0, z1) + crit(p1, z0))
    loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    return loss


def step_flops(fn):
    with FlopCounterMode(display=False) as fc: fn()
    return fc.get_total_flops()


def sgemm_peak(n=2048, reps=10):
    "Median GFLOP/s of an n×n fp32 matmul."
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2): a @ b
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(ts) / 1e9


def bench(name, args):
    ours, lt = make_pair(name, args.hidden, args.out)
    opt_o = torch.optim.SGD(ours.param_groups(1.5e-6), lr=0.05, momentum=0.9)
    opt_l = torch.optim.SGD(lt.parameters(), lr=0.05, momentum=0.9, weight_decay=1.5e-6)
    crit = NegativeCosineSimilarity()
    g = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(2, args.batch, 3, args.size, args.size, generator=g).unbind(0)
    K = args.warmup + args.steps + 1
    flops_o = step_flops(lambda: ours_step(ours, opt_o, x1, x2, 0, K))
    flops_l = step_flops(lambda: lightly_step(lt, opt_l, crit, x1, x2, 0, K))
    t_o, t_l = [], []
    for k in range(1, args.warmup + args.steps + 1):
        order = [('o', lambda: ours_step(ours, opt_o, x1, x2, k, K)), ('l', lambda: lightly_step(lt, opt_l, crit, x1, x2, k, K))]
        if k % 2: order.reverse()
        for who, fn in order:
            t = time.perf_counter(); loss = fn(); dt = time.perf_counter() - t
            assert torch.isfinite(loss), (who, loss)
            if k > args.warmup: (t_o if who == 'o' else t_l).append(dt)
    so, sl = statistics.median(t_o), statistics.median(t_l)
    # the fastest step is the least disturbed by other processes on a shared machine; reported beside the median
    return dict(backbone=name, ours_s_per_step=so, lightly_s_per_step=sl,
                ours_min_s_per_step=min(t_o), lightly_min_s_per_step=min(t_l), ratio_min=min(t_l) / min(t_o),
                ours_img_s=args.batch / so, lightly_img_s=args.batch / sl, ratio_ours_over_lightly=(args.batch / so) / (args.batch / sl),
                ours_times=t_o, lightly_times=t_l, flops_per_step_ours=flops_o, flops_per_step_lightly=flops_l,
                ours_gflop_s=flops_o / so / 1e9, lightly_gflop_s=flops_l / sl / 1e9)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--backbones', default='resnet18,resnet50')
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--steps', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--hidden', type=int, default=4096)
    ap.add_argument('--out', type=int, default=256)
    ap.add_argument('--sgemm-n', type=int, default=2048, help='side of the square fp32 matmul that measures the peak')
    ap.add_argument('--json', default=str(ROOT / 'bench' / 'results' / 'byol.json'))
    args = ap.parse_args(argv)
    load0 = os.getloadavg()
    peak0 = sgemm_peak(args.sgemm_n)
    rows = [bench(n, args) for n in args.backbones.split(',') if n]
    peak1 = sgemm_peak(args.sgemm_n)
    peak = max(peak0, peak1)
    for r in rows:
        r['ours_frac_of_peak'] = r['ours_gflop_s'] / peak
        r['lightly_frac_of_peak'] = r['lightly_gflop_s'] / peak
        r['ours_best_frac_of_peak'] = r['flops_per_step_ours'] / r['ours_min_s_per_step'] / 1e9 / peak
    res = dict(what='BYOL pretraining step (fwd both views online+target, bwd, SGD step, EMA), images/s = batch/median step',
               config=vars(args), sgemm_peak_gflop_s=dict(start=peak0, end=peak1, used=peak, n=args.sgemm_n),
               loadavg=dict(start=load0, end=os.getloadavg()), torch_threads=torch.get_num_threads(),
               cpu=platform.processor() or platform.machine(), cpu_count=os.cpu_count(), git=git_info(ROOT),
               versions=package_versions(('torch', 'torchvision', 'lightly')), results=rows,
               note='other processes may have shared the CPU; see loadavg')
    atomic_write_json(args.json, res)
    print(f"batch {args.batch}, {args.size}x{args.size}, heads {args.hidden}/{args.out}, {args.steps} steps after {args.warmup} "
          f"warm-up, threads {torch.get_num_threads()}, loadavg {load0[0]:.1f}->{os.getloadavg()[0]:.1f}")
    print(f"sgemm peak (n={args.sgemm_n}): {peak0:.1f} / {peak1:.1f} GFLOP/s (start/end)")
    hdr = (f"{'backbone':<10}{'ours img/s':>12}{'lightly img/s':>15}{'ours/lightly':>14}{'(best step)':>13}{'GFLOP/step':>12}"
           f"{'ours GFLOP/s':>14}{'% peak':>8}{'best % peak':>13}")
    print(hdr); print('-' * len(hdr))
    for r in rows:
        best = r['flops_per_step_ours'] / r['ours_min_s_per_step'] / 1e9 / peak
        print(f"{r['backbone']:<10}{r['ours_img_s']:>12.2f}{r['lightly_img_s']:>15.2f}{r['ratio_ours_over_lightly']:>14.3f}"
              f"{r['ratio_min']:>13.3f}{r['flops_per_step_ours']/1e9:>12.2f}{r['ours_gflop_s']:>14.1f}{100*r['ours_frac_of_peak']:>7.1f}%"
              f"{100*best:>12.1f}%")
    print(f"wrote {args.json}")
    return res


if __name__ == '__main__':
    main()
