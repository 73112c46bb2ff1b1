"""Issue 12 end to end: `finetune.ipynb -p semi fcl` trains two streams (labelled crops + unlabelled frame pairs with
flow), records the method and its arguments, and refuses bad arguments before anything is written."""
import json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

def _papermill(tmp_path, *args):
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1', SSLSEG_DATA=os.environ.get('SSLSEG_DATA', str(tmp_path/'data')))
    return subprocess.run([str(BIN/'papermill'), 'nbs/finetune.ipynb', str(tmp_path/'out.ipynb'), *args, '--no-progress-bar'],
                          cwd=ROOT, env=env, capture_output=True, text=True)

def test_finetune_with_fcl(tmp_path):
    run = tmp_path/'run'
    r = _papermill(tmp_path, '-p', 'fraction', '0.5', '-p', 'semi', 'fcl', '-y', 'semi_args: {variant: attractive, flow_source: gt, weight: 0.1}',
                   '-p', 'eval_flip', 'True', '-r', 'out_dir', str(run))
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((run/'metrics.json').read_text())
    assert m['method'] == 'fcl-attractive-gt' and m['semi'] == 'fcl' and m['semi_variant'] == 'attractive' and m['semi_weight'] == 0.1
    assert m['semi_args']['tau'] == 0.5  # the defaults are recorded with the given values
    assert m['protocol']['semi'] == 'fcl-attractive-gt' and m['protocol']['n_unlabelled'] == 8 and m['protocol']['eval'].endswith('flip')
    steps = [json.loads(l) for l in (run/'metrics.jsonl').read_text().splitlines()]
    assert any('fcl' in s and 'ce' in s for s in steps), "the two terms of the loss are logged"
    rec = json.loads((run/'run.json').read_text())
    assert rec['params']['semi_args']['variant'] == 'attractive'

def test_plain_finetune_identity_has_no_semi_keys(tmp_path):
    "Runs without semi-supervision keep the identity they had before `semi` existed (their folders are found complete)."
    run = tmp_path/'run'
    assert _papermill(tmp_path, '-r', 'out_dir', str(run)).returncode == 0
    rec = json.loads((run/'run.json').read_text())
    assert not {'semi', 'semi_args', 'method', 'eval_flip'} & set(rec['params']), sorted(rec['params'])
    assert json.loads((run/'metrics.json').read_text())['method'] == 'supervised'

def test_bad_semi_arguments_stop_before_anything_is_written(tmp_path):
    cases = [(('-p', 'semi', 'fcl', '-y', 'semi_args: {variant: temporl}'), "variant='temporl'"),
             (('-p', 'semi', 'fcl', '-y', 'semi_args: {weigth: 0.1}'), "unknown argument(s) ['weigth']"),
             (('-p', 'semi', 'flc'), "registered: ['fcl']"),
             (('-y', 'semi_args: {variant: temporal}'), 'given without semi')]
    for args, msg in cases:
        r = _papermill(tmp_path, *args, '-r', 'out_dir', str(tmp_path/'run'))
        assert r.returncode != 0 and msg in r.stderr, (args, r.stderr[-1500:])
        assert not (tmp_path/'run').exists(), args
