"""Optical flow against SynthCity's exact flow: end-point error and frames/s of OpenCV DIS (three presets) and Farneback.

For every validation sample of a SynthCity scale (default `quick`, read from disk as `sslseg-flow` reads it) and each
consecutive pair of its sequence frames (18→19, 19→20), each estimator's flow is compared with `flowGT`:
  * EPE = ‖f̂ − f‖₂ per pixel; its mean and the fraction of pixels with EPE > 3 px, on the pixels whose point is visible
    in both frames (`sslseg.synth.flow_visible`, from the scene's layer ids re-rendered by `synthcity_sample`; the
    re-rendered frames are checked byte-equal to the files) and, for reference, on all pixels;
  * the same for the zero flow, the error of not estimating at all;
  * frames/s = pairs per second of `compute_flow` alone (decoded frames in memory, no I/O), median of `--rounds`
    rounds with the methods interleaved, with one OpenCV thread (what each `sslseg-flow` worker uses) and with OpenCV's
    default thread count.
`--hires N` adds N validation samples rendered in memory at `--hires-size` (the `gpu` scale's 256x512), where motions are
4x larger in pixels.

    .venv/bin/python bench/bench_flow.py [--scale quick] [--rounds 3] [--hires 8]

Writes bench/results/flow.json and prints the tables. The machine's cores may be shared: the load average is recorded.
"""
from __future__ import annotations
import argparse, os, platform, statistics, sys, time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from sslseg.core import atomic_write_json, package_versions, git_info, read_json  # noqa: E402
from sslseg.data import read_image_file  # noqa: E402
from sslseg.flow import FLOW_METHODS, compute_flow, end_point_error  # noqa: E402
from sslseg.synth import flow_visible  # noqa: E402
from sslseg.synthcity import ensure_synthcity, synthcity_sample, city_frames, _city_jobs  # noqa: E402

ESTIMATORS = {'dis ultrafast': ('dis', dict(preset='ultrafast')), 'dis fast': ('dis', dict(preset='fast')),
              'dis medium (default)': ('dis', dict(preset='medium')), 'farneback': ('farneback', {})}


def disk_pairs(root:Path, limit:int|None=None)->list[dict]:
    "Validation frame pairs of a SynthCity tree: frames from disk, gt flow from flowGT, visibility from re-rendered layers."
    meta = read_json(root/'synthcity.json'); p = meta['params']
    jobs = [j for j in _city_jobs(root, p['n_train'], p['n_val'], p['n_test'], p['seed'], p['size'], p['n_frames'], p['color'],
                                  False, p.get('n_extra', 0)) if j[1] == 'val'][:limit]
    frs = city_frames(p['n_frames'])
    out = []
    for _, split, city, seq, idx, seed, size, n_frames, *_ in jobs:
        ren = synthcity_sample(seed, split, idx, size, n_frames)
        seqd = root/'leftImg8bit_sequence'/split/city
        imgs = {fr: read_image_file(seqd/f'{city}_{seq:06d}_{fr:06d}_leftImg8bit.png', 'RGB') for fr in frs}
        if not all(np.array_equal(imgs[fr], ren[fr]['img']) for fr in frs):
            raise RuntimeError(f"{seqd}/{city}_{seq:06d}: re-rendered frames differ from the files (generator changed?)")
        for a, b in zip(frs, frs[1:]):
            gt = np.load(root/'flowGT'/split/city/f'{city}_{seq:06d}_{a:06d}_flow.npy').astype(np.float32)
            out.append(dict(id=f'{city}_{seq:06d}_{a:06d}', img0=imgs[a], img1=imgs[b], gt=gt,
                            vis=flow_visible(ren[a]['layer'], ren[b]['layer'], gt)))
    return out


def rendered_pairs(n:int, size:tuple[int, int], seed:int=0)->list[dict]:
    "Validation samples rendered in memory at `size` (noise on, as on disk); flow kept in float32."
    out = []
    for i in range(n):
        ren = synthcity_sample(seed, 'val', i, size, 3)
        frs = sorted(ren)
        for a, b in zip(frs, frs[1:]):
            out.append(dict(id=f'val{i}_{a}', img0=ren[a]['img'], img1=ren[b]['img'], gt=ren[a]['flow'],
                            vis=flow_visible(ren[a]['layer'], ren[b]['layer'], ren[a]['flow'])))
    return out


def accuracy(pairs:list[dict])->dict:
    "Mean EPE and >3 px fraction per estimator (pixels pooled over all pairs), on visible and on all pixels."
    res = {}
    for name, (m, kw) in {'zero flow': (None, {}), **ESTIMATORS}.items():
        e_vis, e_all = [], []
        for p in pairs:
            fl = np.zeros_like(p['gt']) if m is None else compute_flow(p['img0'], p['img1'], m, **kw)
            e = end_point_error(fl, p['gt'])
            e_vis.append(e[p['vis']]); e_all.append(e.ravel())
        ev, ea = np.concatenate(e_vis), np.concatenate(e_all)
        res[name] = dict(method=m, params=kw, epe_visible=float(ev.mean()), over3px_visible=float((ev > 3).mean()),
                         epe_all=float(ea.mean()), over3px_all=float((ea > 3).mean()), n_visible=int(ev.size), n_all=int(ea.size))
    gt_all = np.concatenate([np.hypot(*p['gt']).ravel() for p in pairs])
    return dict(estimators=res, n_pairs=len(pairs), visible_fraction=float(sum(p['vis'].sum() for p in pairs) / gt_all.size),
                gt_magnitude=dict(mean=float(gt_all.mean()), p95=float(np.percentile(gt_all, 95)), max=float(gt_all.max())))


def speed(pairs:list[dict], rounds:int, threads:int|None)->dict:
    "Pairs per second of compute_flow per estimator: median over `rounds`, estimators interleaved (order rotates)."
    import cv2
    old = cv2.getNumThreads()
    if threads is not None: cv2.setNumThreads(threads)
    used = cv2.getNumThreads()
    names, times = list(ESTIMATORS), {k: [] for k in ESTIMATORS}
    try:
        for name in names: compute_flow(pairs[0]['img0'], pairs[0]['img1'], ESTIMATORS[name][0], **ESTIMATORS[name][1])  # warm-up
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                m, kw = ESTIMATORS[name]
                t = time.perf_counter()
                for p in pairs: compute_flow(p['img0'], p['img1'], m, **kw)
                times[name].append(time.perf_counter() - t)
    finally: cv2.setNumThreads(old)
    return dict(opencv_threads=used, estimators={k: dict(fps=len(pairs) / statistics.median(v), s_per_round=v) for k, v in times.items()})


def _table(title:str, acc:dict, sp:list[dict]):
    print(f"\n{title}: {acc['n_pairs']} pairs, {acc['visible_fraction']:.1%} of pixels visible in both frames, "
          f"|gt flow| mean {acc['gt_magnitude']['mean']:.2f} px, p95 {acc['gt_magnitude']['p95']:.2f}, max {acc['gt_magnitude']['max']:.1f}")
    hdr = f"{'estimator':<22}{'EPE vis':>9}{'>3px vis':>10}{'EPE all':>9}{'>3px all':>10}"
    hdr += ''.join(f"{'fps ' + str(s['opencv_threads']) + 'thr':>11}" for s in sp)
    print(hdr)
    for k, v in acc['estimators'].items():
        row = f"{k:<22}{v['epe_visible']:>9.3f}{v['over3px_visible']:>10.2%}{v['epe_all']:>9.3f}{v['over3px_all']:>10.2%}"
        row += ''.join(f"{s['estimators'][k]['fps']:>11.1f}" if k in s['estimators'] else f"{'':>11}" for s in sp)
        print(row)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--scale', default='quick', help="SynthCity scale whose val frames are read ('ci', 'quick', ...)")
    ap.add_argument('--limit', type=int, default=None, help='at most this many val samples (default: all)')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--hires', type=int, default=8, help='val samples rendered in memory at --hires-size (0: none)')
    ap.add_argument('--hires-size', type=int, nargs=2, default=[256, 512])
    ap.add_argument('--json', default=str(ROOT/'bench'/'results'/'flow.json'))
    args = ap.parse_args(argv)
    load0 = os.getloadavg()
    root = ensure_synthcity(args.scale, progress=False)
    pairs = disk_pairs(root, args.limit)
    res = dict(what='optical flow vs SynthCity ground truth: mean EPE (px) and fraction of pixels with EPE > 3 px on pixels '
                    'visible in both frames (and on all pixels); pairs/s of compute_flow alone',
               config=vars(args), data=dict(root=str(root), scale=args.scale, split='val', size=read_json(root/'synthcity.json')['params']['size']),
               disk=dict(accuracy=accuracy(pairs), speed=[speed(pairs, args.rounds, 1), speed(pairs, args.rounds, None)]))
    if args.hires:
        hp = rendered_pairs(args.hires, tuple(args.hires_size))
        res['hires'] = dict(size=args.hires_size, n_samples=args.hires, accuracy=accuracy(hp),
                            speed=[speed(hp, max(1, args.rounds - 1), 1), speed(hp, max(1, args.rounds - 1), None)])
    import cv2
    res |= dict(loadavg=dict(start=load0, end=os.getloadavg()), cpu=platform.processor() or platform.machine(),
                cpu_count=os.cpu_count(), git=git_info(ROOT), versions=package_versions(('numpy',)) | dict(opencv=cv2.__version__))
    atomic_write_json(args.json, res)
    print(f"loadavg {load0[0]:.1f} -> {os.getloadavg()[0]:.1f}; OpenCV {cv2.__version__}")
    _table(f"SynthCity {args.scale} val ({'x'.join(map(str, res['data']['size']))}, from disk)", res['disk']['accuracy'], res['disk']['speed'])
    if args.hires:
        _table(f"SynthCity val rendered at {'x'.join(map(str, args.hires_size))}", res['hires']['accuracy'], res['hires']['speed'])
    print(f"wrote {args.json}")
    return res


if __name__ == '__main__':
    main()
