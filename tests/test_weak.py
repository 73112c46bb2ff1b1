"""Weak labels end to end (issue 13): `nbs/weak_train.ipynb` through papermill, its two-stream retraining keeping N1 in every
batch, its parameter checks, the split's determinism through the notebook, and the pseudo-mask figure notebook."""
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

def _env(tmp_path):
    return dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1', SSLSEG_DATA=os.environ.get('SSLSEG_DATA', str(tmp_path/'data')))

def _papermill(tmp_path, nb, *args, out='out.ipynb'):
    return subprocess.run([str(BIN/'papermill'), f'nbs/{nb}', str(tmp_path/out), *args, '--no-progress-bar'],
                          cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True)

def _jsonl(p:Path)->list[dict]: return [json.loads(l) for l in p.read_text().splitlines() if l.strip()]

@pytest.fixture(scope='module')
def cam_run(tmp_path_factory):
    "One ci run of task (ii) with CAM pseudo masks, logging every step."
    tmp = tmp_path_factory.mktemp('weak')
    r = _papermill(tmp, 'weak_train.ipynb', '-r', 'task', 'ii', '-r', 'pseudo', 'cam', '-p', 'steps', '8', '-p', 'batch_size', '2',
                   '-p', 'pseudo_batch_size', '5', '-r', 'out_dir', str(tmp/'cam'))
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp/'cam'

def test_metrics_record(cam_run):
    "metrics.json: kind, method, per-class test IoU with names, the protocol, the pseudo masks' quality on N2."
    m = json.loads((cam_run/'metrics.json').read_text())
    assert (m['kind'], m['method'], m['task'], m['pseudo']) == ('weak', 'cam', 'ii', 'cam')
    assert len(m['test_iou']) == len(m['class_names']) == 5 and 0 <= m['test_miou'] <= 1
    assert (m['selected'], m['reported']) == ('train-holdout', 'val')
    t = m['tiles']
    assert (len(t['labelled']), len(t['weak']), len(t['val'])) == (3, 20, 7) and len(t['select']) == 3
    assert not set(t['select']) & (set(t['labelled']) | set(t['weak']) | set(t['val']))
    q = m['pseudo_quality']
    assert 0 <= m['pseudo_miou'] == q['miou'] <= 1 and len(q['precision']) == len(q['recall']) == 5
    ex = np.load(cam_run/'pseudo_examples.npz')
    assert ex['img'].shape[0] == ex['pseudo'].shape[0] == ex['msk'].shape[0] >= 1

def test_two_streams_keep_n1_in_every_batch(cam_run):
    "Each logged training record (means over its steps) shows exactly batch_size N1 crops and pseudo_batch_size N2 crops."
    log = [r for r in _jsonl(cam_run/'metrics.jsonl') if r['kind'] == 'train']
    assert log and log[-1]['step'] == 8
    # images_labelled never exceeds batch_size, so a mean equal to it means every step of the window had it
    assert all(r['images_labelled'] == 2.0 and r['images_pseudo'] == 5.0 for r in log)
    run = json.loads((cam_run/'run.json').read_text())
    assert run['train_config']['batch_sizes'] == {'labelled': 2, 'pseudo': 5}

def test_task_i_has_one_stream(tmp_path):
    r = _papermill(tmp_path, 'weak_train.ipynb', '-r', 'task', 'i', '-r', 'pseudo', 'none', '-r', 'out_dir', str(tmp_path/'i'))
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path/'i'/'metrics.json').read_text())
    assert m['method'] == 'n1_only' and m['pseudo_quality'] is None and not (tmp_path/'i'/'masker').exists()
    assert all('images_pseudo' not in r for r in _jsonl(tmp_path/'i'/'metrics.jsonl') if r['kind'] == 'train')

@pytest.mark.parametrize('args,msg', [(['-r', 'task', 'i', '-r', 'pseudo', 'cam'], "task i uses no pseudo masks"),
                                      (['-r', 'task', 'ii', '-r', 'pseudo', 'none'], "task ii needs"),
                                      (['-r', 'task', 'iii'], "task='iii'"),
                                      (['-p', 'n_weak', '23'], "leaves no tile")])
def test_bad_parameters_are_refused(tmp_path, args, msg):
    r = _papermill(tmp_path, 'weak_train.ipynb', *args, '-r', 'out_dir', str(tmp_path/'bad'))
    assert r.returncode != 0 and msg in r.stderr + r.stdout

def test_figure_refuses_examples_of_other_crops(cam_run, tmp_path):
    "The side-by-side figure draws runs of one split only; a run of another seed (other crops) is refused."
    other = tmp_path/'s1'
    r = _papermill(tmp_path, 'weak_train.ipynb', '-r', 'pseudo', 'single_stage', '-p', 'seed', '1', '-r', 'out_dir', str(other), out='s1.ipynb')
    assert r.returncode == 0, r.stderr[-3000:]
    bad = _papermill(tmp_path, 'weak_pseudo_masks.ipynb', '-r', 'cam', str(cam_run/'pseudo_examples.npz'), '-r', 'single_stage',
                     str(other/'pseudo_examples.npz'), '-r', 'out_dir', str(tmp_path/'fig-bad'), out='f1.ipynb')
    assert bad.returncode != 0 and 'other crops' in bad.stderr + bad.stdout
    ok = _papermill(tmp_path, 'weak_pseudo_masks.ipynb', '-r', 'cam', str(cam_run/'pseudo_examples.npz'),
                    '-r', 'out_dir', str(tmp_path/'fig'), '-r', 'fig_dir', str(tmp_path/'figs'), out='f2.ipynb')
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert (tmp_path/'figs'/'weak_pseudo_masks.png').stat().st_size > 0

def test_encdecunpool_with_decoder_dropout(tmp_path):
    "The reference's network (EncDecUnpool, VGG16-BN encoder, decoder dropout 0.5) trains through the same notebook."
    r = _papermill(tmp_path, 'weak_train.ipynb', '-r', 'task', 'i', '-r', 'pseudo', 'none', '-r', 'arch', 'encdecunpool',
                   '-r', 'backbone', 'vgg16_bn', '-p', 'p_drop', '0.5', '-r', 'out_dir', str(tmp_path/'run'))
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path/'run'/'metrics.json').read_text())
    assert m['arch'] == 'encdecunpool' and 0 <= m['test_miou'] <= 1
    assert json.loads((tmp_path/'run'/'run.json').read_text())['params']['model_kw'] == {'p_drop': 0.5}
