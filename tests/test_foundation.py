"Foundation checks that notebooks do badly: requirement files in sync, atomic writes under SIGKILL."
import configparser, os, re, shlex, signal, subprocess, sys, textwrap, time, json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

def _name(req:str)->str:
    "Distribution name of a requirement string, normalised (PEP 503)."
    return re.sub(r'[-_.]+', '-', re.split(r'[<>=!~;\[ ]', req.strip(), 1)[0]).lower()

def _settings_reqs():
    cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(ROOT/'settings.ini')
    d = cfg['DEFAULT']
    return shlex.split(d['requirements']), d['dev_requirements'].split()

def _env_reqs():
    env = yaml.safe_load((ROOT/'environment.yml').read_text())
    assert env['name'] == 'sslseg'
    pip = next(x['pip'] for x in env['dependencies'] if isinstance(x, dict) and 'pip' in x)
    return [p for p in pip if not p.startswith('-e')]

def test_environment_matches_settings():
    req, dev = _settings_reqs()
    env = _env_reqs()
    missing_in_env = sorted({_name(r) for r in req + dev} - {_name(e) for e in env})
    missing_in_ini = sorted({_name(e) for e in env} - {_name(r) for r in req + dev})
    assert not missing_in_env, f"in settings.ini but not environment.yml: {missing_in_env}"
    assert not missing_in_ini, f"in environment.yml but not settings.ini: {missing_in_ini}"
    # same version pins on both sides (torch/torchvision must be the same matched pair everywhere)
    pins = {_name(r): r.replace(' ', '') for r in req + dev}
    for e in env: assert pins[_name(e)] == e.replace(' ', ''), f"pin differs: settings.ini {pins[_name(e)]!r} vs environment.yml {e!r}"

def test_makefile_pins_same_torch_pair():
    req, _ = _settings_reqs()
    mk = (ROOT/'Makefile').read_text()
    for r in req:
        if _name(r) in ('torch', 'torchvision'): assert f'"{r}"' in mk, f"Makefile TORCH_PAIR lacks {r}"

def test_requirement_name_parser():
    assert _name('nbdev>=2.4.14,<3') == 'nbdev'
    assert _name('opencv_python-headless') == 'opencv-python-headless'
    assert _name('torch==2.15.*') == 'torch'

# Two writers of the same shape rewrite a ~1.3 MB record in a loop, in many small writes, while a temp file marks the
# write in progress: the real one (`atomic_open`: temp + fsync + rename) and a control that writes the record in place.
ATOMIC = textwrap.dedent('''
    import sys, itertools, json
    from sslseg.core import atomic_open
    path, big = sys.argv[1], list(range(200_000))
    for i in itertools.count():
        with atomic_open(path) as f:  # many small writes, as torch.save makes them (atomic_torch_save)
            for chunk in json.JSONEncoder().iterencode({"i": i, "payload": big, "end": "complete"}): f.write(chunk.encode())
''')
PLAIN = textwrap.dedent('''
    import sys, itertools, json, os, pathlib
    path, big = pathlib.Path(sys.argv[1]), list(range(200_000))
    for i in itertools.count():
        mark = path.parent/f'.{path.name}.plain___.tmp'; mark.touch()  # a write is in progress
        with open(path, 'w') as f:
            for chunk in json.JSONEncoder().iterencode({"i": i, "payload": big, "end": "complete"}): f.write(chunk)
            f.flush(); os.fsync(f.fileno())
        mark.unlink()
''')

def _kill_mid_write(tmp_path, code:str, trials:int=6)->dict:
    "SIGKILL a writer of `code` while its temp file exists (after a first complete record); count what the kills left."
    out = dict(broken=0, temp_left=0)
    for t in range(trials):
        d = tmp_path/f'trial{t}'; d.mkdir(); path = d/'record.json'
        p = subprocess.Popen([sys.executable, '-c', code, str(path)], cwd=tmp_path)
        t_end = time.time() + 60
        while time.time() < t_end and not (path.exists() and any(d.glob('.record.json.*.tmp'))): pass
        os.kill(p.pid, signal.SIGKILL); p.wait()
        assert p.returncode == -signal.SIGKILL and time.time() < t_end, "no write in progress was seen"
        assert path.exists(), "the record vanished"
        out['temp_left'] += any(d.glob('.record.json.*.tmp'))
        try:
            rec = json.loads(path.read_text())
            out['broken'] += not (rec['end'] == 'complete' and len(rec['payload']) == 200_000)
        except json.JSONDecodeError: out['broken'] += 1
        # whatever the kill left, never a second file under the record's own name
        assert all(f.name == 'record.json' or f.name.startswith('.record.json.') for f in d.iterdir())
    return out

def test_sigkill_mid_write_leaves_old_or_new(tmp_path):
    "SIGKILLed while writing (its temp file exists), the atomic writer leaves a complete old or new record."
    res = _kill_mid_write(tmp_path, ATOMIC)
    assert res['temp_left'] >= 1, f"no kill landed mid-write: {res}"
    assert res['broken'] == 0, res

def test_sigkill_harness_catches_a_plain_writer(tmp_path):
    "The control: the same harness on a writer that writes in place finds broken records, so the test above can fail."
    res = _kill_mid_write(tmp_path, PLAIN)
    assert res['temp_left'] >= 1 and res['broken'] >= 1, res

def test_readme_generated_from_index():
    "README.md is the rendering of nbs/index.ipynb (never edited by hand)."
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_readme_quickstart_has_the_two_commands():
    text = (ROOT/'README.md').read_text()
    assert 'make reproduce' in text and 'make test' in text
    assert 'make test' in (ROOT/'.ci'/'run').read_text()
