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

WRITER = textwrap.dedent('''
    import sys, itertools
    from sslseg.core import atomic_write_json
    path = sys.argv[1]
    big = list(range(200_000))   # ~1.3 MB of JSON, so a kill lands mid-write often
    print('ready', flush=True)
    for i in itertools.count():
        atomic_write_json(path, {"i": i, "payload": big, "end": "complete"})
''')

@pytest.mark.parametrize('delay', [0.05, 0.2, 0.5, 1.0])
def test_sigkill_mid_write_leaves_old_or_new(tmp_path, delay):
    "A process SIGKILLed while rewriting a record leaves a complete old or new file, never a broken one."
    path = tmp_path/'record.json'
    p = subprocess.Popen([sys.executable, '-c', WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == 'ready'
    time.sleep(delay)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    assert p.returncode == -signal.SIGKILL
    if path.exists():  # may not exist yet if killed before the first rename
        rec = json.loads(path.read_text())
        assert rec['end'] == 'complete' and len(rec['payload']) == 200_000
    # temp files may be left behind by the kill, but never under the record's name
    assert all(f.name.startswith('.record.json.') for f in tmp_path.iterdir() if f.name != 'record.json')

def test_non_atomic_write_would_break(tmp_path):
    "The test above can fail: a plain write killed mid-way leaves a truncated file."
    path = tmp_path/'record.json'
    code = textwrap.dedent('''
        import sys, json, itertools
        big = list(range(200_000)); print('ready', flush=True)
        for i in itertools.count():
            with open(sys.argv[1], 'w') as f:
                for chunk in json.JSONEncoder().iterencode({"i": i, "payload": big, "end": "complete"}): f.write(chunk)
    ''')
    broken = 0
    for delay in (0.1, 0.3, 0.5):
        p = subprocess.Popen([sys.executable, '-c', code, str(path)], stdout=subprocess.PIPE, text=True)
        p.stdout.readline(); time.sleep(delay); os.kill(p.pid, signal.SIGKILL); p.wait()
        try: json.loads(path.read_text())
        except json.JSONDecodeError: broken += 1
    assert broken >= 1

def test_readme_generated_from_index():
    "README.md is the rendering of nbs/index.ipynb (never edited by hand)."
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_readme_quickstart_has_the_two_commands():
    text = (ROOT/'README.md').read_text()
    assert 'make reproduce' in text and 'make test' in text
    assert 'make test' in (ROOT/'.ci'/'run').read_text()
