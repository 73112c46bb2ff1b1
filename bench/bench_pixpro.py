"""PixPro positive pairs at full resolution: anchor-subset pair finding (sslseg) vs PixPro's dense all-pairs mask.

Two modes per feature-map size, each case in a fresh subprocess so its peak memory is its own:
  * `pairs`: finding the positive pairs only — `find_pairs` (n_anchors anchors, their windows in view 2's grid) vs
    `dense_pos_mask` (the (H·W)² distance matrix of PixPro's `regression_loss`);
  * `step`: pairs + PPM + the PixPro loss (both directions), forward and backward — at the sampled pixels
    (global PPM, O(P·HW)) vs PixPro's reference (PPM over every pixel and the loss over the dense mask, O((HW)²)).
The features are random (B, D, H, W) tensors; the two views are random resized crops of a 1024×2048 image that
overlap by at least a third. Peak memory: `torch.cuda.max_memory_allocated` on CUDA, the growth of the process's peak
RSS over its RSS before the case on the CPU. A dense case whose estimated memory exceeds `--max-gb` is not run and is
reported as out of memory with its estimate (the machine may be shared: allocating 100 GiB to watch it fail is not
free). Median of `--steps` timed repeats after `--warmup`.

    .venv/bin/python bench/bench_pixpro.py [--sizes 64x128,128x256,256x512] [--batch 2] [--device cpu] [--max-gb 4]

Writes bench/results/pixpro.json (or --out) and prints a markdown table.
"""
from __future__ import annotations
import argparse, json, os, platform, resource, statistics, subprocess, sys, time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from sslseg.core import atomic_write_json, package_versions, git_info  # noqa: E402
from sslseg.pretext.pixpro import find_pairs, dense_pos_mask, PixelPropagation, pixpro_loss, _gather  # noqa: E402

GiB = 2**30

def _rss()->int:
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')

def _geometry(B:int, g:torch.Generator):
    "Two boxes per image of a 1024×2048 image, overlapping by at least a third of the smaller, random flips."
    b1, b2 = [], []
    while len(b1) < B:
        h1, h2 = [int(torch.randint(256, 1024, (), generator=g)) for _ in range(2)]
        t1, t2 = [int(torch.randint(0, 1024 - h + 1, (), generator=g)) for h in (h1, h2)]
        l1, l2 = [int(torch.randint(0, 2048 - 2*h + 1, (), generator=g)) for h in (h1, h2)]
        ov = max(0, min(t1 + h1, t2 + h2) - max(t1, t2)) * max(0, min(l1 + 2*h1, l2 + 2*h2) - max(l1, l2))
        if ov >= min(h1, h2)**2 * 2 / 3: b1.append([t1, l1, h1, 2*h1]); b2.append([t2, l2, h2, 2*h2])
    f = torch.rand(2, B, generator=g) < 0.5
    return torch.tensor(b1), f[0], torch.tensor(b2), f[1]

def dense_estimate(mode:str, B:int, N:int)->float:
    "Bytes the dense case needs at least: float64 distances + bool mask; the step adds ~6 float32 (N, N) maps (sim, pow, cos, grads)."
    return B * N * N * (9 + (24 if mode == 'step' else 0))

def _dense_step(x1, x2, t1, t2, geo, ppm):
    B, D, H, W = x1.shape
    allidx = torch.arange(H * W, device=x1.device).expand(B, -1)
    m = dense_pos_mask(*geo).float()
    n = lambda t: torch.nn.functional.normalize(t, dim=-1)
    y1, y2 = n(ppm(x1, allidx)), n(ppm(x2, allidx))
    k1, k2 = n(t1.flatten(2).transpose(1, 2)), n(t2.flatten(2).transpose(1, 2))
    per = lambda c: (c * m).sum((1, 2)) / m.sum((1, 2)).clamp_min(1)
    return -per(torch.bmm(y1, k2.transpose(1, 2))).mean() - per(torch.bmm(k1, y2.transpose(1, 2))).mean()

def _anchor_step(x1, x2, t1, t2, geo, ppm, a):
    p = find_pairs(*geo, n_anchors=a.n_anchors, n_pairs=a.n_pairs)
    return (pixpro_loss(ppm(x1, p.idx1), _gather(t2, p.idx2), p.valid) + pixpro_loss(ppm(x2, p.idx2), _gather(t1, p.idx1), p.valid))

def run_case(a)->dict:
    "One (method, mode, size) in this process: median time and peak memory."
    H, W = (int(v) for v in a.case_size.split('x'))
    dev = torch.device(a.device)
    g = torch.Generator().manual_seed(0)
    b1, f1, b2, f2 = _geometry(a.batch, g)
    geo = (b1.to(dev), f1.to(dev), (H, W), b2.to(dev), f2.to(dev), (H, W))
    x1, x2, t1, t2 = (torch.randn(a.batch, a.dim, H, W, generator=g).to(dev) for _ in range(4))
    x1.requires_grad_(); x2.requires_grad_()
    ppm = PixelPropagation(a.dim, g='linear').to(dev)
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    def once():
        if a.mode == 'pairs':
            with torch.no_grad(): out = (find_pairs(*geo, n_anchors=a.n_anchors, n_pairs=a.n_pairs) if a.method == 'anchor'
                                         else dense_pos_mask(*geo))
            return out
        loss = _anchor_step(x1, x2, t1, t2, geo, ppm, a) if a.method == 'anchor' else _dense_step(x1, x2, t1, t2, geo, ppm)
        loss.backward(); x1.grad = x2.grad = None
        return loss
    if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats(dev); base = torch.cuda.memory_allocated(dev)
    else: base = _rss()
    times = []
    for i in range(a.warmup + a.steps):
        sync(); t0 = time.perf_counter(); out = once(); sync(); dt = time.perf_counter() - t0
        del out
        if i >= a.warmup: times.append(dt)
    peak = (torch.cuda.max_memory_allocated(dev) - base) if dev.type == 'cuda' else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    return dict(time_s=statistics.median(times), peak_gib=max(peak, 0) / GiB)

def main(argv=None)->int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--sizes', default='64x128,128x256,256x512'); ap.add_argument('--batch', type=int, default=2)
    ap.add_argument('--dim', type=int, default=64, help='feature channels D'); ap.add_argument('--device', default='cpu')
    ap.add_argument('--n-anchors', type=int, default=2048); ap.add_argument('--n-pairs', type=int, default=1024)
    ap.add_argument('--steps', type=int, default=3); ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--modes', default='pairs,step')
    ap.add_argument('--max-gb', type=float, default=None, help='dense cases estimated above this are reported as OOM, not run '
                    '(default: 4 on the CPU, the free GPU memory on CUDA)')
    ap.add_argument('--out', default=str(ROOT/'bench'/'results'/'pixpro.json'))
    ap.add_argument('--case-size'); ap.add_argument('--method'); ap.add_argument('--mode')  # internal: one case
    a = ap.parse_args(argv)
    if a.case_size:
        print(json.dumps(run_case(a))); return 0
    if a.max_gb is None:
        a.max_gb = torch.cuda.mem_get_info()[0] / GiB if a.device.startswith('cuda') else 4.0
    rows = []
    for size in a.sizes.split(','):
        H, W = (int(v) for v in size.split('x'))
        for mode in a.modes.split(','):
            for method in ('anchor', 'dense'):
                row = dict(size=size, mode=mode, method=method, batch=a.batch, dim=a.dim, device=a.device,
                           n_anchors=a.n_anchors if method == 'anchor' else None, n_pairs=a.n_pairs if method == 'anchor' else None)
                est = dense_estimate(mode, a.batch, H * W) / GiB if method == 'dense' else None
                row['dense_est_gib'] = est
                if est is not None and est > a.max_gb:
                    row.update(status='oom', note=f'needs >= {est:.1f} GiB (budget {a.max_gb:.1f} GiB); not run')
                else:
                    cmd = [sys.executable, __file__, '--case-size', size, '--method', method, '--mode', mode, '--batch', str(a.batch),
                           '--dim', str(a.dim), '--device', a.device, '--n-anchors', str(a.n_anchors), '--n-pairs', str(a.n_pairs),
                           '--steps', str(a.steps), '--warmup', str(a.warmup)]
                    r = subprocess.run(cmd, capture_output=True, text=True)
                    if r.returncode == 0: row.update(status='ok', **json.loads(r.stdout.strip().splitlines()[-1]))
                    else:
                        err = (r.stderr.strip().splitlines() or ['killed'])[-1]
                        row.update(status='oom' if 'memory' in err.lower() or r.returncode in (-9, 137) else 'error', note=err[:300])
                rows.append(row); print(json.dumps(row), flush=True)
    atomic_write_json(Path(a.out), dict(rows=rows, argv=sys.argv[1:], platform=platform.platform(), torch=torch.__version__,
                                        threads=torch.get_num_threads(), versions=package_versions(), git=git_info()))
    print('\n| size | mode | method | batch | time (s) | peak memory (GiB) | note |\n|---|---|---|---|---|---|---|')
    for r in rows:
        t = f"{r['time_s']:.3f}" if r.get('time_s') is not None else '—'
        m = f"{r['peak_gib']:.3f}" if r.get('peak_gib') is not None else '—'
        print(f"| {r['size']} | {r['mode']} | {r['method']} | {r['batch']} | {t} | {m} | {r.get('note', '')} |")
    return 0

if __name__ == '__main__':
    sys.exit(main())
