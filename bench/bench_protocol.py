"""Speed buys steps: what one training step of the protocol costs, side by side in one process.

Three measurements, each interleaved round by round so that a disturbance on the shared machine hits every variant:
  1. the BYOL pretraining step (fwd both views through online and target networks, bwd, SGD step, EMA): sslseg's `BYOL`
     eager, with `channels_last`, and compiled (`torch.compile`, inductor), against lightly's BYOL example (eager, the
     way its example runs) with the same backbone, initial weights, heads, batch and resolution (bench_byol.py's pair);
  2. the fine-tuning step (FCN-8s cross-entropy, fwd + bwd + SGD step): eager, `channels_last`, compiled;
  3. data loading of the fine-tuning set (read + decode + training transform per image): PNG decoding each time
     against the decoded-image cache (`sslseg.data.set_decode_cache`), warm.
Medians of `--steps` timed steps after `--warmup` (compilation happens in the warm-up and is reported separately).

    .venv/bin/python bench/bench_protocol.py [--backbone resnet18] [--byol-batch 32] [--byol-size 64] [--ft-batch 8]
                                             [--ft-crop 96] [--steps 10] [--no-compile]

Writes bench/results/protocol.json and prints the tables.
"""
from __future__ import annotations
import argparse, os, platform, statistics, sys, time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT/'bench'))
from sslseg.core import atomic_write_json, package_versions, git_info  # noqa: E402
from sslseg.models import build_model  # noqa: E402
from bench_byol import make_pair, ours_step, lightly_step, NegativeCosineSimilarity  # noqa: E402


def _cl(x): return x.contiguous(memory_format=torch.channels_last)


def interleave(fns:dict, warmup:int, steps:int)->dict:
    "{name: [seconds per timed call]}: every round calls each fn once, in an order that rotates each round."
    names, times, first = list(fns), {k: [] for k in fns}, {}
    for k in range(warmup + steps):
        for name in names[k % len(names):] + names[:k % len(names)]:
            t = time.perf_counter(); fns[name](k); dt = time.perf_counter() - t
            if k == 0: first[name] = dt
            if k >= warmup: times[name].append(dt)
    return dict(times=times, first_call_s=first)


def byol_variants(args)->dict:
    K = args.warmup + args.steps + 1
    fns = {}
    g = torch.Generator().manual_seed(1)
    x1, x2 = torch.randn(2, args.byol_batch, 3, args.byol_size, args.byol_size, generator=g).unbind(0)
    ours, lt = make_pair(args.backbone, args.hidden, args.out)
    opt_l = torch.optim.SGD(lt.parameters(), lr=0.05, momentum=0.9, weight_decay=1.5e-6)
    crit = NegativeCosineSimilarity()
    fns['lightly (eager)'] = lambda k: lightly_step(lt, opt_l, crit, x1, x2, k, K)
    variants = [('eager', False, False), ('channels_last', True, False)] + ([('compile', True, True)] if args.compile else [])
    for name, cl, comp in variants:
        net = make_pair(args.backbone, args.hidden, args.out)[0]
        if cl: net = net.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(net.param_groups(1.5e-6), lr=0.05, momentum=0.9)
        a, b = (_cl(x1), _cl(x2)) if cl else (x1, x2)
        if comp: net.training_step = torch.compile(net.training_step)
        fns[f'sslseg {name}'] = (lambda net, opt, a, b: lambda k: ours_step(net, opt, a, b, k, K))(net, opt, a, b)
    return interleave(fns, args.warmup, args.steps)


def finetune_variants(args)->dict:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(args.ft_batch, 3, args.ft_crop, args.ft_crop, generator=g)
    y = torch.randint(0, 19, (args.ft_batch, args.ft_crop, args.ft_crop), generator=g)
    fns = {}
    variants = [('eager', False, False), ('channels_last', True, False)] + ([('compile', True, True)] if args.compile else [])
    for name, cl, comp in variants:
        torch.manual_seed(0)
        m = build_model('fcn8s', args.backbone, num_classes=19)
        if cl: m = m.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        xx = _cl(x) if cl else x
        loss_fn = (lambda m: lambda a, b: F.cross_entropy(m(a), b, ignore_index=255))(m)
        if comp: loss_fn = torch.compile(loss_fn)
        def step(k, m=m, opt=opt, xx=xx, loss_fn=loss_fn):
            loss = loss_fn(xx, y); opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        fns[name] = step
    return interleave(fns, args.warmup, args.steps)


def loading_variants(args)->dict:
    "Images/s of reading + decoding + transforming the fine-tuning training images, without and with the decode cache."
    from sslseg.datasets import get_dataset
    from sslseg.data import set_decode_cache
    data = get_dataset('synthcity').load(scale=args.scale, crop_size=args.ft_crop)
    n = min(args.load_images, len(data.pool))
    def epoch(ds):
        for i in range(n): ds[i]
    set_decode_cache(1024); epoch(data.pool)  # fill the cache (not timed)
    res = {}
    for name, mb in (('png decode', 0), ('decode cache', 1024)):
        cache = set_decode_cache(mb)
        if mb: epoch(data.pool)
        ts = []
        for _ in range(args.load_rounds):
            t = time.perf_counter(); epoch(data.pool); ts.append(time.perf_counter() - t)
        res[name] = dict(img_s=n / statistics.median(ts), s_per_epoch=ts, n_images=n, cache=repr(cache))
    set_decode_cache(0)
    return res


def _summ(times:dict, batch:int)->dict:
    return {k: dict(median_s=statistics.median(v), min_s=min(v), img_s=batch / statistics.median(v), times=v) for k, v in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--backbone', default='resnet18')
    ap.add_argument('--byol-batch', type=int, default=32); ap.add_argument('--byol-size', type=int, default=64)
    ap.add_argument('--hidden', type=int, default=1024); ap.add_argument('--out', type=int, default=128)
    ap.add_argument('--ft-batch', type=int, default=8); ap.add_argument('--ft-crop', type=int, default=96)
    ap.add_argument('--steps', type=int, default=10); ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--scale', default='quick', help='SynthCity scale whose training images the loading bench reads')
    ap.add_argument('--load-images', type=int, default=200); ap.add_argument('--load-rounds', type=int, default=3)
    ap.add_argument('--no-compile', dest='compile', action='store_false')
    ap.add_argument('--json', default=str(ROOT/'bench'/'results'/'protocol.json'))
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    load0 = os.getloadavg()
    byol = byol_variants(args); ft = finetune_variants(args); load = loading_variants(args)
    b, f = _summ(byol['times'], args.byol_batch), _summ(ft['times'], args.ft_batch)
    ref = b['lightly (eager)']['img_s']
    for v in b.values(): v['ratio_to_lightly'] = v['img_s'] / ref
    for v in f.values(): v['ratio_to_eager'] = v['img_s'] / f['eager']['img_s']
    res = dict(what='median step time of the BYOL and fine-tuning steps and images/s of data loading, variants interleaved',
               config=vars(args), byol=b, byol_first_call_s=byol['first_call_s'], finetune=f, finetune_first_call_s=ft['first_call_s'],
               loading=load, loadavg=dict(start=load0, end=os.getloadavg()), torch_threads=torch.get_num_threads(),
               cpu=platform.processor() or platform.machine(), cpu_count=os.cpu_count(), git=git_info(ROOT),
               versions=package_versions(('torch', 'torchvision', 'lightly')))
    atomic_write_json(args.json, res)
    print(f"{args.backbone}, threads {torch.get_num_threads()}, loadavg {load0[0]:.1f}->{os.getloadavg()[0]:.1f}; "
          f"medians of {args.steps} steps after {args.warmup} warm-up")
    print(f"\nBYOL step (batch {args.byol_batch}, {args.byol_size}x{args.byol_size}, heads {args.hidden}/{args.out})")
    print(f"{'variant':<24}{'s/step':>9}{'img/s':>9}{'÷ lightly':>11}{'first call s':>14}")
    for k, v in b.items():
        print(f"{k:<24}{v['median_s']:>9.3f}{v['img_s']:>9.1f}{v['ratio_to_lightly']:>11.2f}{byol['first_call_s'][k]:>14.1f}")
    print(f"\nfine-tuning step (FCN-8s, batch {args.ft_batch}, crop {args.ft_crop})")
    print(f"{'variant':<24}{'s/step':>9}{'img/s':>9}{'÷ eager':>11}{'first call s':>14}")
    for k, v in f.items():
        print(f"{k:<24}{v['median_s']:>9.3f}{v['img_s']:>9.1f}{v['ratio_to_eager']:>11.2f}{ft['first_call_s'][k]:>14.1f}")
    print(f"\ndata loading (SynthCity {args.scale} train, read + decode + training transform, {load['png decode']['n_images']} images)")
    for k, v in load.items(): print(f"{k:<24}{v['img_s']:>9.0f} img/s")
    print(f"wrote {args.json}")
    return res


if __name__ == '__main__':
    main()
