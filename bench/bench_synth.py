"""Generation throughput of SynthCity (labelled frames incl. sequence frames and flow) and SynthAerial (tiles) at the
`quick` scale's sizes, with 1 and 2 worker processes. Prints a table; writes bench/results/synth.json.

    .venv/bin/python bench/bench_synth.py [--n-city 48] [--n-aerial 12]

The machine's cores may be shared with other jobs: the load average is recorded beside the numbers.
"""
import argparse, os, platform, tempfile, time
from pathlib import Path

from sslseg.core import atomic_write_json, package_versions
from sslseg.synthaerial import SYNTHAERIAL_SCALES, make_synthaerial
from sslseg.synthcity import SYNTHCITY_SCALES, make_synthcity

def _time(fn):
    t = time.perf_counter(); fn(); return time.perf_counter() - t

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n-city', type=int, default=48, help='SynthCity labelled samples per measurement')
    ap.add_argument('--n-aerial', type=int, default=12, help='SynthAerial tiles per measurement (<= 33)')
    ap.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    ap.add_argument('--out', default=str(Path(__file__).parent/'results'/'synth.json'))
    a = ap.parse_args(argv)
    cq, aq = SYNTHCITY_SCALES['quick'], SYNTHAERIAL_SCALES['quick']
    rows = []
    for w in a.workers:
        with tempfile.TemporaryDirectory() as d:
            load0 = os.getloadavg()[0]
            s = _time(lambda: make_synthcity(Path(d)/'c', a.n_city, 0, 0, size=cq['size'], n_frames=cq['n_frames'],
                                             workers=w, progress=False))
            rows.append(dict(dataset='SynthCity', size=list(cq['size']), n_frames=cq['n_frames'], workers=w, n=a.n_city,
                             seconds=round(s, 2), img_per_s=round(a.n_city/s, 2), loadavg_before=round(load0, 2)))
            load0 = os.getloadavg()[0]
            s = _time(lambda: make_synthaerial(Path(d)/'a', a.n_aerial, tile_size=aq['tile_size'], workers=w, progress=False))
            rows.append(dict(dataset='SynthAerial', size=list(aq['tile_size']), n_frames=None, workers=w, n=a.n_aerial,
                             seconds=round(s, 2), img_per_s=round(a.n_aerial/s, 2), loadavg_before=round(load0, 2)))
    n_quick = cq['n_train'] + cq['n_val'] + cq['n_test']
    print(f"{'dataset':<12} {'size':>9} {'workers':>7} {'n':>4} {'s':>7} {'img/s':>7} {'load':>5}")
    for r in rows:
        print(f"{r['dataset']:<12} {'x'.join(map(str, r['size'])):>9} {r['workers']:>7} {r['n']:>4} {r['seconds']:>7} "
              f"{r['img_per_s']:>7} {r['loadavg_before']:>5}")
    est = {f"synthcity_quick_{r['workers']}w_s": round(n_quick/r['img_per_s'], 1) for r in rows if r['dataset'] == 'SynthCity'}
    est |= {f"synthaerial_quick_{r['workers']}w_s": round(aq['n_tiles']/r['img_per_s'], 1) for r in rows if r['dataset'] == 'SynthAerial'}
    print('estimated time for the quick profiles:', est)
    atomic_write_json(a.out, dict(bench='synth', rows=rows, quick_profile_estimate_s=est, cpu_count=os.cpu_count(),
                                  machine=platform.processor() or platform.machine(), versions=package_versions(),
                                  note='cores shared with other jobs: see loadavg_before'))
    return rows

if __name__ == '__main__': main()
