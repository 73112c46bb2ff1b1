"""Benchmark every segmentation architecture of `sslseg.models` on this machine's CPU.

For each (arch, backbone, norm) a fresh subprocess builds the model, runs forward + backward (cross-entropy on random
labels) at batch 4, 128x256, `--warmup` times untimed then `--reps` times timed, and reports the median time and its
peak memory: `ru_maxrss` of the subprocess (peak resident set size) and its increase over the resident size just
before the first forward (the activations and gradients). Results go to bench/results/models.json and models.md.

    .venv/bin/python bench/bench_models.py [--reps 3] [--warmup 1] [--only fcn8s:resnet18:bn ...]

The machine's 2 cores are shared by several engineers: the system load average is recorded beside the numbers; read
times as upper bounds and compare rows of the same run only.
"""
from __future__ import annotations
import argparse, json, os, platform, resource, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [('fcn8s', 'resnet18', 'bn'), ('fcn8s', 'resnet50', 'bn'), ('fcn8s', 'resnet101', 'bn'), ('fcn8s', 'drn50', 'bn'),
           ('fcn8s', 'resnet50', 'gn_ws'),
           ('deeplabv3', 'resnet18', 'bn'), ('deeplabv3', 'resnet50', 'bn'), ('deeplabv3', 'drn50', 'bn'),
           ('unet', 'unet', 'bn'), ('encdecunpool', 'vgg16_bn', 'bn')]
BS, H, W, NC = 4, 128, 256, 19


def _rss_mb() -> float:
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def run_one(arch: str, backbone: str, norm: str, reps: int, warmup: int) -> dict:
    "Measure one config in this process (called in a fresh subprocess)."
    import torch
    import torch.nn.functional as F
    from sslseg.models import build_model
    torch.manual_seed(0)
    m = build_model(arch, backbone, NC, norm=norm).train()
    x, t = torch.randn(BS, 3, H, W), torch.randint(0, NC, (BS, H, W))
    rss0 = _rss_mb()
    times = []
    for i in range(warmup + reps):
        t0 = time.perf_counter()
        loss = F.cross_entropy(m(x), t)
        loss.backward()
        m.zero_grad(set_to_none=True)
        if i >= warmup: times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(arch=arch, backbone=backbone, norm=norm, params_m=round(sum(p.numel() for p in m.parameters()) / 1e6, 2),
                backbone_params_m=round(sum(p.numel() for p in m.backbone.parameters()) / 1e6, 2),
                feature_dim=m.feature_dim, feature_stride=m.feature_stride,
                fwd_bwd_s_median=round(statistics.median(times), 3), fwd_bwd_s_min=round(min(times), 3),
                times_s=[round(v, 3) for v in times], peak_rss_mb=round(peak, 1), rss_before_mb=round(rss0, 1),
                peak_rss_delta_mb=round(peak - rss0, 1), threads=torch.get_num_threads())


def to_markdown(res: dict) -> str:
    head = ('| arch | backbone | norm | params (M) | backbone (M) | fwd+bwd median (s) | min (s) | peak RSS (MB) '
            '| RSS delta (MB) | feature D / stride |')
    lines = [f"# Model benchmark: batch {BS}, {H}x{W}, fwd+bwd (cross-entropy, {NC} classes), CPU", '',
             f"{res['protocol']}", '',
             f"Host: {res['machine']['processor']} ({res['machine']['cpu_count']} cores, torch {res['machine']['torch']}, "
             f"{res['machine']['threads']} threads); git {str(res['git'].get('sha'))[:10]}"
             f"{' (dirty)' if res['git'].get('dirty') else ''}; {res['date']}.", '',
             f"**Load:** other work on these 2 cores slows the numbers; load average {res['loadavg_start']} at the start, "
             f"{res['loadavg_end']} at the end. Times are upper bounds; compare rows of one run only.", '', head,
             '|' + '---|' * 10]
    for r in res['rows']:
        if 'error' in r:
            lines.append(f"| {r['arch']} | {r['backbone']} | {r['norm']} | error: {r['error'][:60]} |||||||"); continue
        lines.append(f"| {r['arch']} | {r['backbone']} | {r['norm']} | {r['params_m']} | {r['backbone_params_m']} | "
                     f"{r['fwd_bwd_s_median']} | {r['fwd_bwd_s_min']} | {r['peak_rss_mb']} | {r['peak_rss_delta_mb']} | "
                     f"{r['feature_dim']} / {r['feature_stride']} |")
    return '\n'.join(lines) + '\n'


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--warmup', type=int, default=1)
    ap.add_argument('--only', nargs='*', help='arch:backbone:norm entries (default: all)')
    ap.add_argument('--out', default=str(ROOT / 'bench' / 'results'))
    ap.add_argument('--one', help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.one:
        print(json.dumps(run_one(*a.one.split(':'), a.reps, a.warmup))); return
    import torch
    from sslseg.core import atomic_write_json, atomic_write_bytes, git_info
    cfgs = [tuple(c.split(':')) for c in a.only] if a.only else CONFIGS
    print(f"NOTE: ~6 engineers share this machine's 2 CPU cores while this runs; load average now {os.getloadavg()}",
          file=sys.stderr)
    res = dict(protocol=(f"batch {BS}, {H}x{W}, random init, train mode, forward + cross-entropy + backward, "
                         f"{a.warmup} warm-up + {a.reps} timed reps (median), each model in a fresh subprocess; "
                         f"peak memory = ru_maxrss of that subprocess, delta = over the RSS after building the model"),
               date=time.strftime('%Y-%m-%d %H:%M:%S %Z'), git=git_info(ROOT),
               machine=dict(processor=platform.processor() or platform.machine(), cpu_count=os.cpu_count(),
                            torch=torch.__version__, threads=torch.get_num_threads()),
               loadavg_start=[round(v, 2) for v in os.getloadavg()], rows=[])
    for arch, bb, norm in cfgs:
        t0 = time.time()
        p = subprocess.run([sys.executable, __file__, '--one', f'{arch}:{bb}:{norm}', '--reps', str(a.reps),
                            '--warmup', str(a.warmup)], capture_output=True, text=True, cwd=ROOT)
        row = (json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else
               dict(arch=arch, backbone=bb, norm=norm, error=p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f'rc {p.returncode}'))
        row['loadavg_1min'] = round(os.getloadavg()[0], 2)
        res['rows'].append(row)
        print(f"{arch:13s} {bb:10s} {norm:6s} {row.get('fwd_bwd_s_median', row.get('error'))} s "
              f"peak {row.get('peak_rss_mb')} MB  ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    res['loadavg_end'] = [round(v, 2) for v in os.getloadavg()]
    out = Path(a.out)
    atomic_write_json(out / 'models.json', res)
    atomic_write_bytes(out / 'models.md', to_markdown(res).encode())
    print(to_markdown(res))


if __name__ == '__main__':
    main()
