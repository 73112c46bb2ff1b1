"""Video pretext tasks on one CPU thread: SynthCity snippet generation and the step time of each video recipe.

  * generation: `make_synthcity` of `--gen` snippets (train/val/test in the scale's 8:1:1-ish proportions) with
    `--n-frames` frames each at `--size`, in-process (workers=0): seconds and MiB per snippet;
  * times are CPU seconds of this single-threaded process (`time.process_time`), so a shared machine does not inflate
    them; wall-clock medians are kept beside them in the JSON (`wall_*`);
  * steps: for each recipe in `--methods`, its `--profile` hyper-parameters over `--backbone`, batches made by its own
    views from the generated snippets (as `fit` would, num_workers=0): the median over `--steps` timed steps (after
    `--warmup`) of the batch time (sampling + decoding + cropping) and of the optimiser step (forward, backward,
    AdamW); the projected pretraining time is the profile's steps × (batch + step), and the loss of the first and last
    timed steps is kept.

    .venv/bin/python bench/bench_video.py [--gen 32] [--size 64x128] [--n-frames 30] [--methods triplet,frame_order,colorization]
                                          [--profile quick] [--steps 10] [--warmup 2] [--threads 1] [--json bench/results/video.json]

Prints a markdown table and writes the JSON (with the machine, versions and git state).
"""
from __future__ import annotations
import argparse, platform, statistics, sys, tempfile, time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from sslseg.core import atomic_write_json, package_versions, git_info  # noqa: E402
from sslseg.synthcity import make_synthcity  # noqa: E402
from sslseg.data import CityscapesSnippets  # noqa: E402
from sslseg.pretext import get_pretext  # noqa: E402
from sslseg.optim import build_optimizer  # noqa: E402


def _du(root:Path)->int: return sum(p.stat().st_size for p in root.rglob('*') if p.is_file())

def bench_generation(root:Path, n:int, size:tuple[int, int], n_frames:int)->dict:
    n_val = n_test = max(1, n//10)
    t, c = time.perf_counter(), time.process_time()
    make_synthcity(root, n - n_val - n_test, n_val, n_test, size=size, n_frames=n_frames, workers=0, progress=False)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    return dict(n_snippets=n, n_frames=n_frames, size=list(size), seconds=round(dc, 2), s_per_snippet=round(dc/n, 3), wall_s=round(dt, 2),
                mib_per_snippet=round(_du(root)/n/2**20, 3))

def bench_method(name:str, root:Path, profile:str, backbone:str, steps:int, warmup:int, seed:int=0)->dict:
    recipe = get_pretext(name); hp = recipe.hparams(profile)
    views = recipe.views(hp)
    ds = CityscapesSnippets(root, 'train', min_frames=views.min_frames, transform=views)
    torch.manual_seed(seed)
    net = recipe.make(backbone, 'bn', 'fcn8s' if backbone != 'unet' else 'unet', hp).train()
    cfg = recipe.train_config(hp)
    opt = build_optimizer(cfg['optimizer'], net.param_groups(cfg['weight_decay']), lr=cfg['lr'], momentum=0.9,
                          weight_decay=cfg['weight_decay'], eta=0.001)
    g = torch.Generator().manual_seed(seed)
    it = iter(torch.utils.data.DataLoader(ds, batch_size=hp['batch_size'], sampler=torch.utils.data.RandomSampler(ds, True, 10**6, generator=g)))
    t_data, t_step, c_data, c_step, losses = [], [], [], [], []
    for k in range(warmup + steps):
        t0, c0 = time.perf_counter(), time.process_time(); batch = next(it); t1, c1 = time.perf_counter(), time.process_time()
        out = net.training_step(batch); opt.zero_grad(set_to_none=True); out['loss'].backward(); opt.step()
        net.on_step_end(k, warmup + steps); t2, c2 = time.perf_counter(), time.process_time()
        if k >= warmup:
            t_data.append(t1 - t0); t_step.append(t2 - t1); c_data.append(c1 - c0); c_step.append(c2 - c1); losses.append(out['loss'].item())
    d, s = statistics.median(c_data), statistics.median(c_step)
    return dict(method=name, profile=profile, backbone=backbone, batch_size=hp['batch_size'], crop_size=hp['crop_size'],
                profile_steps=hp['steps'], batch_s=round(d, 4), step_s=round(s, 4), projected_pretrain_s=round(hp['steps']*(d + s), 1),
                wall_batch_s=round(statistics.median(t_data), 4), wall_step_s=round(statistics.median(t_step), 4),
                loss_first=round(losses[0], 4), loss_last=round(losses[-1], 4), n_snippets=len(ds))

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--gen', type=int, default=32, help='snippets to generate (and to train on)')
    ap.add_argument('--size', default='64x128'); ap.add_argument('--n-frames', type=int, default=30)
    ap.add_argument('--methods', default='triplet,frame_order,colorization'); ap.add_argument('--profile', default='quick')
    ap.add_argument('--backbone', default='resnet18'); ap.add_argument('--steps', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=2); ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--json', default=str(ROOT/'bench'/'results'/'video.json'))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    size = tuple(int(v) for v in a.size.lower().split('x'))
    with tempfile.TemporaryDirectory() as tmp:
        gen = bench_generation(Path(tmp)/'snippets', a.gen, size, a.n_frames)
        rows = [bench_method(m, Path(tmp)/'snippets', a.profile, a.backbone, a.steps, a.warmup) for m in a.methods.split(',') if m]
    res = dict(generation=gen, results=rows, threads=a.threads, machine=dict(platform=platform.platform(), processor=platform.processor(),
               cpus=torch.get_num_threads()), versions=package_versions(), git=git_info(), argv=sys.argv[1:])
    atomic_write_json(a.json, res)
    print(f"generation: {gen['n_snippets']} snippets × {gen['n_frames']} frames at {size[0]}×{size[1]}: {gen['seconds']} s "
          f"({gen['s_per_snippet']} s and {gen['mib_per_snippet']} MiB per snippet)\n")
    print('| method | backbone | batch | crop | batch s | step s | profile steps | projected pretraining s | loss first → last |')
    print('|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['method']} | {r['backbone']} | {r['batch_size']} | {r['crop_size']} | {r['batch_s']} | {r['step_s']} | "
              f"{r['profile_steps']} | {r['projected_pretrain_s']} | {r['loss_first']} → {r['loss_last']} |")
    return res

if __name__ == '__main__' and 'IPython' not in sys.modules: main()
