"""What a Flow Consistency Loss step costs: one optimiser step of plain fine-tuning (cross-entropy on a labelled batch)
against FCL steps (the same + an unlabelled batch of frame pairs), for each variant, side by side in one run.

FCN-8s/ResNet-18 at the `quick` profile's shape (crops of 64, labelled batch 8) on SynthCity quick, batches prepared
in memory (no I/O), one thread (what each job of a 2-job sweep gets on the 2-core machine). Each method is timed for
`--steps` steps after `--warmup` steps, the methods interleaved round by round so a load change on a shared machine
hits all of them; median seconds per step and the ratio to the plain step. Also the time to read one unlabelled pair
(`FlowPairs`, decoding + crop; DIS backward flow for the temporal variant's check).

    .venv/bin/python bench/bench_fcl.py [--steps 10] [--rounds 3] [--threads 1]

Writes bench/results/fcl.json and prints the table. The load average is recorded (the machine's cores may be shared).
"""
from __future__ import annotations
import argparse, os, platform, statistics, sys, time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from sslseg.core import atomic_write_json, package_versions, git_info  # noqa: E402
from sslseg.datasets import get_dataset  # noqa: E402
from sslseg.models import build_model  # noqa: E402
from sslseg.semi import get_semi  # noqa: E402
from sslseg.train import SupervisedSeg  # noqa: E402

CASES = {'plain (cross-entropy)': None,
         'fcl temporal, unlabelled 4': dict(variant='temporal', flow_source='dis', batch_size=4),
         'fcl temporal, unlabelled 8': dict(variant='temporal', flow_source='dis', batch_size=8),
         'fcl attractive, unlabelled 4': dict(variant='attractive', flow_source='dis', batch_size=4),
         'fcl repulsive, unlabelled 4': dict(variant='repulsive', flow_source='dis', batch_size=4)}


def first_batch(ds, bs):
    return next(iter(torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=True, generator=torch.Generator().manual_seed(0))))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=10); ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--rounds', type=int, default=3); ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--out', default=str(ROOT/'bench'/'results'/'fcl.json'))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    data = get_dataset('synthcity').load(scale='quick', crop_size=64)
    train, _ = data.labelled(0.1, 0)
    recipe = get_semi('fcl')
    setups, read_s = {}, {}
    for name, args in CASES.items():
        torch.manual_seed(0)
        model = build_model('fcn8s', 'resnet18', num_classes=19).to(memory_format=torch.channels_last)
        if args is None: m, b = SupervisedSeg(model), first_batch(train, 8)
        else:
            m, st, bss = recipe.build(model, data, train, recipe.resolve(args), 64, 8)
            b = dict(labelled=first_batch(st['labelled'], 8), unlabelled=first_batch(st['unlabelled'], bss['unlabelled']))
            t = time.perf_counter(); [st['unlabelled'][i] for i in range(16)]; read_s[name] = (time.perf_counter() - t)/16
        setups[name] = (m, b, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9))
    times = {n: [] for n in setups}
    def step(m, b, opt):
        t = time.perf_counter(); out = m.training_step(b); opt.zero_grad(); out['loss'].backward(); opt.step()
        return time.perf_counter() - t
    for n, s in setups.items():
        for _ in range(a.warmup): step(*s)
    for r in range(a.rounds):
        for n, s in setups.items(): times[n] += [step(*s) for _ in range(a.steps)]
    base = statistics.median(times['plain (cross-entropy)'])
    rows = {n: dict(median_s=round(statistics.median(t), 4), ratio_to_plain=round(statistics.median(t)/base, 2),
                    read_pair_ms=round(1000*read_s[n], 2) if n in read_s else None) for n, t in times.items()}
    print(f"{'step':34s} {'median s':>9s} {'x plain':>8s} {'read pair ms':>13s}")
    for n, r in rows.items():
        print(f"{n:34s} {r['median_s']:9.3f} {r['ratio_to_plain']:8.2f} {r['read_pair_ms'] if r['read_pair_ms'] is not None else '':>13}")
    atomic_write_json(a.out, dict(bench='fcl', rows=rows, threads=a.threads, steps=a.steps, rounds=a.rounds,
                                  shape=dict(arch='fcn8s', backbone='resnet18', crop=64, labelled_batch=8),
                                  machine=dict(cpu=platform.processor() or platform.machine(), cores=os.cpu_count(),
                                               loadavg=os.getloadavg()), git=git_info(ROOT), versions=package_versions()))
    print(f"wrote {a.out}")


if __name__ == '__main__':
    main()
