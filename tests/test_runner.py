"""The run layer with real processes: papermill runs of a toy notebook (tests/toy_job.ipynb, no training) for the checks
a notebook cannot do on itself, and `sslseg-sweep` killed, signalled, timed out and re-run (issue 9)."""
import hashlib, json, os, re, signal, subprocess, sys, textwrap, time, uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TOY = Path(__file__).parent/'toy_job.ipynb'

def _env(mark=None, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1', **kw)
    if mark: env['SSLSEG_TEST_MARK'] = mark
    return env

def _papermill(tmp_path, *args, env=None):
    return subprocess.run([str(BIN/'papermill'), str(TOY), str(tmp_path/f'out-{uuid.uuid4().hex[:6]}.ipynb'), *args,
                           '--no-progress-bar'], cwd=ROOT, env=env or _env(), capture_output=True, text=True)

def _marked(mark)->list[int]:
    "Pids of live processes carrying the test's marker in their environment (the sweep's jobs, kernels and their children)."
    from sslseg.sweep import processes_with
    return processes_with(f'SSLSEG_TEST_MARK={mark}')

def _wait_gone(mark, timeout=15.0)->list[int]:
    t_end = time.time() + timeout
    while (left := _marked(mark)) and time.time() < t_end: time.sleep(0.2)
    return left

def _temps(root:Path)->list[Path]: return [p for p in root.rglob('.*.tmp')]

def _count(status:str, stdout:str)->int:
    "How many of the runner's progress lines (`  status  wall_s  job`) have `status`."
    return len(re.findall(rf'^ *{status} +[\d.]+s  ', stdout, re.M))

# --- the notebook side: records, parameters, the lock (real papermill runs) -----------------------------------------

def test_failing_cell_recorded_as_failed(tmp_path):
    "A cell raising after open_run: papermill still fails with the traceback, and run.json says failed with the error."
    r = _papermill(tmp_path, '-p', 'fail', 'True', '-r', 'out_dir', str(tmp_path/'run'))
    assert r.returncode != 0 and 'RuntimeError: toy failure' in r.stderr + r.stdout
    rec = json.loads((tmp_path/'run'/'run.json').read_text())
    assert rec['status'] == 'failed' and rec['error'] == 'RuntimeError: toy failure', rec
    assert "raise RuntimeError('toy failure')" in rec['traceback'] and rec['end']

def test_parameter_typo_fails_the_notebook(tmp_path):
    "Issue 9, problem 5: a mistyped name or a wrong type fails a direct papermill run before anything is written."
    run = tmp_path/'run'
    r = _papermill(tmp_path, '-p', 'sede', '1', '-r', 'out_dir', str(run))
    assert r.returncode != 0 and "unknown parameter 'sede' (did you mean 'seed'?)" in r.stderr, r.stderr[-2000:]
    assert 'big, fail, init' in r.stderr and not run.exists()
    r = _papermill(tmp_path, '-r', 'fail', 'false', '-r', 'out_dir', str(run))
    assert r.returncode != 0 and '`-p fail False`' in r.stderr and not run.exists()
    assert _papermill(tmp_path, '-p', 'seed', '1', '-p', 'x', '2', '-r', 'out_dir', str(run)).returncode == 0
    assert json.loads((run/'metrics.json').read_text())['x'] == 2

def test_second_writer_refused_and_other_params_refused(tmp_path):
    "One writer per run (the holder is named), and a finished run re-opened with other parameters keeps its bytes."
    from sslseg.core import RunLock
    run = tmp_path/'run'
    with RunLock(run):
        r = _papermill(tmp_path, '-r', 'out_dir', str(run))
        assert r.returncode != 0 and f'is in use by pid {os.getpid()}' in r.stderr, r.stderr[-2000:]
    assert _papermill(tmp_path, '-r', 'out_dir', str(run)).returncode == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.suffix == '.json'}
    r = _papermill(tmp_path, '-p', 'x', '2', '-r', 'out_dir', str(run))
    assert r.returncode != 0 and 'x: 1 -> 2' in r.stderr
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.suffix == '.json'} == before

# --- the sweep runner ------------------------------------------------------------------------------------------------

def _spec(tmp_path, name='toy', xs=(1, 2, 3, 4), **params)->Path:
    p = tmp_path/f'{name}.yaml'
    p.write_text(textwrap.dedent(f'''
        name: {name}
        stages:
          - name: work
            notebook: {TOY}
            params: {json.dumps(params)}
            grid: {{x: {list(xs)}}}
    '''))
    return p

def _sweep(spec, out, *extra):
    return [str(BIN/'sslseg-sweep'), str(spec), '--profile', 'ci', '--out', str(out), *extra]

def _finished(out:Path)->dict:
    "run dir -> (sha256, mtime_ns) of its metrics.json."
    return {p.parent: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in out.rglob('metrics.json')}

def _starts(out:Path)->dict:
    return {p.parent: p.read_text().count('start ') for p in out.rglob('executions.log')}

def _start_sweep(cmd, mark):
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(mark), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)

def _wait_for(cond, p, timeout=180):
    t_end = time.time() + timeout
    while time.time() < t_end and p.poll() is None:
        if cond(): return True
        time.sleep(0.1)
    return False

def _rerun_computes_missing_once(spec, out, finished, starts, n):
    "Re-run: every missing run computed exactly once, every finished run untouched (bytes and mtime)."
    r = subprocess.run(_sweep(spec, out), cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert _count('exists', r.stdout) == len(finished), r.stdout
    after = _starts(out)
    assert len(after) == n and len(_finished(out)) == n
    for d, k in after.items():
        assert k - starts.get(d, 0) == (0 if d in finished else 1), f"{d.name}: {k - starts.get(d, 0)} executions in the re-run"
    assert {d: v for d, v in _finished(out).items() if d in finished} == finished, "a finished run was recomputed"
    assert not _temps(out), _temps(out)

def test_sweep_sigkilled_with_its_jobs_then_rerun(tmp_path):
    "SIGKILL of the sweep's process group mid-way: no job survives it; the re-run computes each missing run once."
    spec, out, mark = _spec(tmp_path, sleep=8.0, big=2_000_000), tmp_path/'runs', uuid.uuid4().hex
    p = _start_sweep(_sweep(spec, out, '--jobs', '2'), mark)
    # kill once a run is finished and another is mid-way (its log says it started, no metrics.json yet)
    mid = lambda: len(_finished(out)) >= 1 and any(d not in _finished(out) for d in _starts(out))
    assert _wait_for(mid, p), "never saw a finished and a running job"
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    # the running job had seconds of work left: gone within 5 s means it was stopped, not that it finished
    assert not _wait_gone(mark, timeout=5), "papermill or a kernel outlived the SIGKILLed sweep"
    finished, starts = _finished(out), _starts(out)
    assert 1 <= len(finished) < 4
    _rerun_computes_missing_once(spec, out, finished, starts, 4)

@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_sweep_stops_on_signal(tmp_path, sig):
    "Ctrl-C / SIGTERM: the running jobs are stopped (whole process trees), recorded stopped, resumable; exit 128+sig."
    spec, out, mark = _spec(tmp_path, xs=(1, 2, 3), sleep=3.0), tmp_path/'runs', uuid.uuid4().hex
    p = _start_sweep(_sweep(spec, out, '--jobs', '2'), mark)
    assert _wait_for(lambda: any(d not in _finished(out) for d in _starts(out)), p), "no job started"
    os.killpg(p.pid, sig)  # what Ctrl-C does: the terminal signals the sweep's foreground process group
    stdout, _ = p.communicate(timeout=60)
    assert p.returncode == 128 + sig, stdout[-3000:]
    assert f'sweep stopped by {signal.Signals(sig).name}' in stdout and 'stopped' in stdout
    assert not _marked(mark), "a process of the sweep outlived it"
    stopped = [json.loads(d.joinpath('run.json').read_text()) for d in _starts(out) if d not in _finished(out)]
    assert stopped and all(r['status'] == 'stopped' for r in stopped), stopped
    assert not _temps(out)
    _rerun_computes_missing_once(spec, out, _finished(out), _starts(out), 3)

def test_second_signal_kills_at_once(tmp_path):
    "A job child that ignores SIGTERM (own session): one signal waits for the grace period, a second kills it at once."
    spec, out, mark = _spec(tmp_path, xs=(1,), sleep=60.0, stubborn=True), tmp_path/'runs', uuid.uuid4().hex
    p = _start_sweep(_sweep(spec, out), mark)
    assert _wait_for(lambda: len(_marked(mark)) >= 4, p), "the job and its stubborn child never started"  # sweep, papermill, kernel, child
    os.kill(p.pid, signal.SIGTERM); time.sleep(1.0); t0 = time.time(); os.kill(p.pid, signal.SIGTERM)
    p.communicate(timeout=30)
    assert time.time() - t0 < 5, "the second signal did not kill at once (the grace period is 10 s)"
    assert p.returncode == 128 + signal.SIGTERM and not _marked(mark)

def test_timeout_leaves_no_temp_file(tmp_path):
    "Issue 9: a --timeout kill mid-write used to leave a hidden `.checkpoint.pt.*.tmp` behind for good."
    spec, out = _spec(tmp_path, xs=(1,), big=1_000_000, stall=60.0), tmp_path/'runs'  # killed while writing, always
    r = subprocess.run(_sweep(spec, out, '--timeout', '8'), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and _count('timeout', r.stdout) == 1, r.stdout[-2000:]
    (run,) = _starts(out)
    assert (run/'checkpoint.pt').exists() and not _temps(out), _temps(out)
    assert json.loads((run/'run.json').read_text())['status'] == 'timeout'

def test_bad_sweeps_refused_before_anything_runs(tmp_path):
    "A cycle, a missing dependency, --jobs 0, a bad value or name: an error naming it, and no run directory made."
    out = tmp_path/'runs'
    cyc = tmp_path/'cyc.yaml'
    cyc.write_text(f"name: cyc\nstages:\n  - {{name: a, notebook: {TOY}, after: [b]}}\n  - {{name: b, notebook: {TOY}, after: [a]}}\n")
    miss = tmp_path/'miss.yaml'
    miss.write_text(f"name: miss\nstages:\n  - {{name: a, notebook: {TOY}, params: {{init: {{stage: pre, file: x}}}}}}\n")
    cases = [(_sweep(cyc, out), 'dependency cycle between stages: a -> b -> a'),
             (_sweep(miss, out), "stage 'a' depends on unknown stage(s) ['pre']"),
             (_sweep(_spec(tmp_path, 'j'), out, '--jobs', '0'), "argument --jobs: expected an int >= 1, got '0'"),
             (_sweep(_spec(tmp_path, 'v', seed=-1), out), 'seed=-1: expected an int >= 0'),
             (_sweep(_spec(tmp_path, 'n', sede=1), out), "unknown parameter 'sede' (did you mean 'seed'?)")]
    for cmd, msg in cases:
        r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True)
        assert r.returncode == 2 and msg in r.stderr, (msg, r.stderr[-2000:])
    assert not out.exists()
    from sslseg.experiments import Job
    from sslseg.sweep import run_jobs
    with pytest.raises(ValueError, match=r"job 'b' depends on \['a'\], which is not in the sweep"):
        run_jobs([Job('b', TOY, {}, tmp_path/'b', deps=('a',))])

def test_held_run_dir_reported_busy(tmp_path):
    "Re-running while a run dir is held (e.g. the previous sweep's job still alive) does not start a second writer."
    from sslseg.core import RunLock
    spec, out = _spec(tmp_path, xs=(1, 2)), tmp_path/'runs'
    from sslseg.experiments import load_sweep, sweep_jobs
    held = sweep_jobs(load_sweep(spec), 'ci', out)[0].run_dir
    with RunLock(held):
        r = subprocess.run(_sweep(spec, out), cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert r.returncode == 1 and _count('busy', r.stdout) == 1 and f'held by pid {os.getpid()}' in r.stdout, r.stdout[-2000:]
    assert not (held/'executions.log').exists() and len(_finished(out)) == 1

def test_submitit_local_executor(tmp_path):
    "`--executor slurm` goes through submitit; its local cluster runs a two-stage sweep here, dependency first, resumable."
    spec, out = tmp_path/'two.yaml', tmp_path/'runs'
    spec.write_text(textwrap.dedent(f'''
        name: two
        stages:
          - {{name: pre, notebook: {TOY}, grid: {{seed: [0]}}}}
          - name: post
            notebook: {TOY}
            grid:
              init: [{{stage: pre, match: {{seed: 0}}, file: metrics.json}}]
              x: [1, 2]
    '''))
    cmd = _sweep(spec, out, '--executor', 'slurm', '--submitit-cluster', 'local', '--jobs', '2')
    r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert len(_finished(out)) == 3 and (out/'ci'/'.submitit').is_dir()
    r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and _count('exists', r.stdout) == 3, r.stdout[-3000:]
