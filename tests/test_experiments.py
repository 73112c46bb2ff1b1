"End to end: papermill as the README types it, the sweep CLI with its report, and a killed sweep resumed."
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

def _env(tmp_path):
    # generated data shared across tests through SSLSEG_DATA (CI sets it); one thread per process on 2 cores
    return dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1',
                SSLSEG_DATA=os.environ.get('SSLSEG_DATA', str(tmp_path/'data')))

def test_papermill_finetune_as_typed(tmp_path):
    "`papermill nbs/finetune.ipynb out.ipynb -p fraction 0.1` from the repository root, exactly as in the README."
    out = tmp_path/'out.ipynb'
    r = subprocess.run([str(BIN/'papermill'), 'nbs/finetune.ipynb', str(out), '-p', 'fraction', '0.1', '-p', 'out_dir',
                        str(tmp_path/'run'), '--no-progress-bar'], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path/'run'/'metrics.json').read_text())
    assert m['kind'] == 'finetune' and m['fraction'] == 0.1 and m['split_reported'] == 'test'
    assert 0 <= m['test_miou'] <= 1 and m['test_miou_lo'] <= m['test_miou_hi']
    rec = json.loads((tmp_path/'run'/'run.json').read_text())
    assert rec['status'] == 'done' and rec['git']['sha'] and rec['peak_memory_mb'] > 0 and 'torch' in rec['versions']

def _sweep(tmp_path, *extra):
    return [str(BIN/'sslseg-sweep'), '--profile', 'ci', '--fractions', '0.5,1.0', '--inits', 'random,byol',
            '--seeds', '0', '--out', str(tmp_path/'runs'), '--jobs', '2', *extra]

def _figures_snapshot()->dict:
    return {p.name: p.read_bytes() for p in sorted((ROOT/'figures').glob('*')) if p.is_file()}

def test_sweep_report_and_resume(tmp_path):
    "A sweep killed mid-way completes only what is missing when run again; the report writes figure, CSV and tables."
    env, before_figs = _env(tmp_path), _figures_snapshot()
    p = subprocess.Popen(_sweep(tmp_path), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    deadline, first = time.time() + 600, None
    while time.time() < deadline and p.poll() is None:
        done = list((tmp_path/'runs').rglob('metrics.json'))
        if done: first = done[0]; break
        time.sleep(0.5)
    assert first is not None, "no run completed before the deadline"
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    n_before = len(list((tmp_path/'runs').rglob('metrics.json')))
    assert 1 <= n_before < 5
    r = subprocess.run(_sweep(tmp_path, '--report'), cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count(' exists') >= n_before - 1  # the run killed mid-write of metrics.json may be redone
    runs = tmp_path/'runs'/'ci'
    assert len(list((runs/'finetune').glob('*/metrics.json'))) == 4
    figs = runs/'figures'
    for f in ('byol_gain.png', 'byol_gain.csv', 'iou_table.md', 'iou_table.csv'): assert (figs/f).stat().st_size > 0
    csv = (figs/'byol_gain.csv').read_text().splitlines()
    assert csv[0].startswith('dataset,data,method,init') and len(csv) == 1 + 4
    assert _figures_snapshot() == before_figs, "a ci sweep must not touch the committed figures/"

def test_sweep_rejects_unknown_parameter(tmp_path):
    "A typo in a parameter name is an error before anything runs (papermill alone would only warn)."
    from sslseg.experiments import Job, check_parameters
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['fractoin'\]"):
        check_parameters(ROOT/'nbs'/'finetune.ipynb', {'fractoin': 0.1})
    r = subprocess.run(_sweep(tmp_path, '--inits', 'random,bogus'), cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True)
    assert r.returncode != 0 and "unknown init(s) ['bogus']" in r.stderr
