"""Video pretext tasks end to end (issue 14): `pretrain.ipynb` runs each video recipe at the `ci` profile on SynthCity
snippets of 30 frames, and its hand-off reaches FCN-8s, DeepLabv3 and the UNet with 100 % of the backbone's tensors
matched; the snippet tree keeps the scale's frames; the bench's command line writes its JSON. (Samplers, losses and
the loss falling are tested in nbs/05e_pretext.video.ipynb and nbs/05f_pretext.colorization.ipynb.)"""
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
METHODS = ['triplet', 'frame_order', 'colorization']

def _env(tmp_path):
    return dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1',
                SSLSEG_DATA=os.environ.get('SSLSEG_DATA', str(tmp_path/'data')))

def _pretrain(tmp_path, method, *args):
    run = tmp_path/f'run-{method}'
    r = subprocess.run([str(BIN/'papermill'), 'nbs/pretrain.ipynb', str(tmp_path/f'{method}.ipynb'), '-r', 'method', method,
                        '-r', 'out_dir', str(run), *args, '--no-progress-bar'], cwd=ROOT, env=_env(tmp_path),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return run

@pytest.mark.parametrize('method', METHODS)
def test_pretrain_ci_handoff_matches_fully(tmp_path, method):
    "`papermill nbs/pretrain.ipynb out.ipynb -p method <video task>` (ci) trains on snippets and hands off a backbone FCN-8s and DeepLabv3 take whole."
    run = _pretrain(tmp_path, method)
    m = json.loads((run/'metrics.json').read_text())
    assert (m['method'], m['handoff'], m['n_frames'], m['steps']) == (method, 'backbone', 30, 4)
    assert np.isfinite(m['final_loss']) and m['n_unlabelled'] == 8  # the ci scale's 8 training snippets
    sys.path.insert(0, str(ROOT))
    from sslseg.models import build_model
    from sslseg.models.registry import load_checkpoint
    sd, meta = load_checkpoint(run/'backbone.pt')
    assert (meta['method'], meta['backbone'], meta['handoff']) == (method, 'resnet18', 'backbone')
    for arch in ('fcn8s', 'deeplabv3'):
        model = build_model(arch, 'resnet18', num_classes=19, init=run/'backbone.pt', min_match=1.0)
        rep = model.init_report
        assert rep.fraction == 1.0 and rep.backbone_matched == rep.backbone_total == len(sd), rep.summary()
        assert all(torch.equal(model.backbone.state_dict()[k], v) for k, v in sd.items())

def test_pretrain_unet_backbone_for_the_unet(tmp_path):
    "The same recipe over the UNet's encoder hands off to the UNet (arch and backbone 'unet')."
    run = _pretrain(tmp_path, 'triplet', '-r', 'backbone', 'unet', '-r', 'arch', 'unet')
    sys.path.insert(0, str(ROOT))
    from sslseg.models import build_model
    model = build_model('unet', 'unet', num_classes=19, init=run/'backbone.pt', min_match=1.0)
    assert model.init_report.fraction == 1.0 and model.init_report.backbone_total > 0

def test_snippet_tree_keeps_the_scale_frames(tmp_path):
    "The 30-frame ci tree is an opt-in beside the scale's own: its frames 18-20 are the ci tree's frames, byte for byte."
    env = _env(tmp_path)
    code = ("from sslseg.datasets import get_dataset\nimport json\nd = get_dataset('synthcity').load(scale='ci')\n"
            "s = d.snippets(None, n_frames=30)\nprint(json.dumps([str(d.root), str(s.root), s.snippets[0].frames]))")
    r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    base, long, frames = json.loads(r.stdout.strip().splitlines()[-1])
    assert base != long and frames == list(range(5, 35))
    seq = lambda root: sorted((Path(root)/'leftImg8bit_sequence'/'train').glob('*/*_0000[12][0-9]_leftImg8bit.png'))
    short = {p.name: p.read_bytes() for p in seq(base)}
    longer = {p.name: p.read_bytes() for p in seq(long) if p.name in short}
    assert len(short) == 8*3 and longer == short
    manifest = json.loads((Path(long)/'synthcity.json').read_text())
    assert manifest['params']['n_frames'] == 30 and manifest['frames'] == list(range(5, 35))

def test_bench_video_cli(tmp_path):
    out = tmp_path/'video.json'
    r = subprocess.run([sys.executable, str(ROOT/'bench'/'bench_video.py'), '--gen', '3', '--n-frames', '12', '--profile', 'ci',
                        '--steps', '1', '--warmup', '0', '--json', str(out)], cwd=ROOT, env=_env(tmp_path), capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res['generation']['n_snippets'] == 3 and res['generation']['s_per_snippet'] > 0
    assert [row['method'] for row in res['results']] == METHODS and all(row['step_s'] > 0 for row in res['results'])
