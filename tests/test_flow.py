"""`sslseg-flow` on a Cityscapes-layout tree: killed mid-way (SIGKILL) and run again, it completes, skips the files that
were finished, leaves no temp file, and no flow file is ever partial; worker processes give the same flow as in-process.
(The flow itself and the loader are tested in nbs/06_flow.ipynb.)"""
import os, signal, subprocess, sys, time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent/'sslseg-flow'
H, W, N = 192, 384, 40  # big enough that one pair takes tens of ms: the kill lands mid-run


def _tree(root: Path) -> Path:
    "A Cityscapes-layout tree of textured frames panning by (2, 1) px: labelled frame 19 and its successor 20."
    rng = np.random.default_rng(0)
    for i in range(N):
        city = ('aachen', 'bremen')[i % 2]
        big = cv2.GaussianBlur(rng.uniform(0, 255, (H + 8, W + 8, 3)).astype(np.float32), (0, 0), 2)
        big = (big * 3 - 255).clip(0, 255).astype(np.uint8)
        stem = f'{city}_{i:06d}'
        for d, fr, (y, x) in (('leftImg8bit', 19, (4, 4)), ('leftImg8bit_sequence', 19, (4, 4)), ('leftImg8bit_sequence', 20, (3, 2))):
            p = root/d/'train'/city/f'{stem}_{fr:06d}_leftImg8bit.png'
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(big[y:y + H, x:x + W]).save(p)
    return root


def _env():
    return dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))


def _check_complete_files(d: Path) -> list[Path]:
    "Every flow file there loads whole, with the right shape and dtype."
    files = sorted(d.rglob('*_flow.npy'))
    for p in files:
        a = np.load(p)
        assert a.shape == (2, H, W) and a.dtype == np.float16, p
    return files


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    return _tree(tmp_path_factory.mktemp('flowtree'))


def test_cli_exists():
    assert CLI.exists(), f"{CLI} missing: .venv/bin/pip install -e . --no-deps (settings.ini console_scripts)"


def test_kill_and_resume(tree, tmp_path):
    out = tree/'flowFarneback'
    proc = subprocess.Popen([str(CLI), str(tree), '--method', 'farneback', '--workers', '0', '--no-progress'],
                            env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    t_end = time.monotonic() + 600  # generous: on a loaded machine the CLI may take minutes to start (it imports torch)
    try:
        while time.monotonic() < t_end and proc.poll() is None:
            if out.is_dir() and len(list(out.rglob('*_flow.npy'))) >= 3: break
            time.sleep(0.01)
        assert proc.poll() is None, f"finished before the kill: {proc.communicate()}"
        assert time.monotonic() < t_end, "no flow file written in 600 s"
    finally:
        if proc.poll() is None: os.kill(proc.pid, signal.SIGKILL)  # only the process this test started
        proc.wait(30)
    done = _check_complete_files(out)
    assert 3 <= len(done) < N, len(done)
    mtimes = {p: p.stat().st_mtime_ns for p in done}
    # what a writer killed inside `atomic_open` leaves: a temp file, never taken for the flow file itself
    stale = out/'train'/'aachen'/'.aachen_000038_000019_flow.npy.k1ll3d_x.tmp'
    stale.write_bytes(b'\x93NUMPY partial')
    # the rerun (two worker processes) completes and keeps what was finished
    r = subprocess.run([str(CLI), str(tree), '--method', 'farneback', '--workers', '2', '--no-progress'],
                       env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{N} flow files ({N - len(done)} written, {len(done)} already there)" in r.stdout, r.stdout
    files = _check_complete_files(out)
    assert len(files) == N and all(p.stat().st_mtime_ns == m for p, m in mtimes.items())
    assert not stale.exists() and not [p for p in out.rglob('*') if p.name.endswith('.tmp')]  # temps of killed runs removed
    # the flow is right (the frames pan by (2, 1)) and does not depend on the process that computed it
    from sslseg.flow import compute_flow
    for p in (files[0], files[-1]):
        a = np.load(p).astype(np.float32)
        assert np.abs(np.median(a[:, 16:-16, 16:-16].reshape(2, -1), 1) - [2, 1]).max() < 0.2
        i0, i1 = (np.asarray(Image.open(tree/'leftImg8bit_sequence'/'train'/p.parent.name/p.name.replace('_000019_flow.npy', f'_0000{k}_leftImg8bit.png')))
                  for k in (19, 20))
        np.testing.assert_allclose(a, compute_flow(i0, i1, 'farneback'), atol=0.02)


def test_bad_input_named(tmp_path):
    root = _tree(tmp_path/'t')
    bad = root/'leftImg8bit_sequence/train/aachen/aachen_000000_000020_leftImg8bit.png'  # the first pair: the run stops at once
    bad.write_bytes(b'\x89PNG truncated')
    r = subprocess.run([str(CLI), str(root), '--workers', '2', '--no-progress'], env=_env(), cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and 'aachen_000000_000020_leftImg8bit.png' in r.stderr, r.stderr[-2000:]
    bad.unlink()
    r = subprocess.run([str(CLI), str(root), '--workers', '0', '--no-progress'], env=_env(), cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and 'missing' in r.stderr and 'aachen_000000_000020_leftImg8bit.png' in r.stderr, r.stderr[-2000:]
