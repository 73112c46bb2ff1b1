"""SynthCity / SynthAerial on disk: determinism across worker counts, exact layouts, valid ids, manifest-last, kill-and-resume,
and a cache that never deletes what it did not write."""
import hashlib, json, re, signal, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslseg.core import atomic_write_json, read_json
from sslseg.classes import CITYSCAPES_LABELS, ISPRS_CLASSES
from sslseg.synth import flow_visible, warp_back
from sslseg.synthaerial import VAIHINGEN_AREAS, ensure_synthaerial, make_synthaerial
from sslseg.synthcity import ensure_synthcity, make_synthcity, synthcity_sample

CITY = dict(n_train=4, n_val=2, n_test=2, size=(32, 64), n_frames=3)

def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}

def test_synthcity_byte_identical_across_workers(tmp_path):
    a = _tree(make_synthcity(tmp_path/'a', **CITY, seed=3, workers=0, progress=False))
    b = _tree(make_synthcity(tmp_path/'b', **CITY, seed=3, workers=2, progress=False))
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    c = _tree(make_synthcity(tmp_path/'c', **CITY, seed=4, workers=0, progress=False))
    assert a['leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png'] != c['leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png']

def test_synthcity_layout_and_ids(tmp_path):
    root = make_synthcity(tmp_path/'sc', **CITY, workers=0, progress=False)
    imgs = sorted(root.glob('leftImg8bit/*/*/*_leftImg8bit.png'))
    assert len(imgs) == 8 and {p.parts[-3] for p in imgs} == {'train', 'val', 'test'}
    valid = {i for i, *_ in CITYSCAPES_LABELS}
    seen = set()
    for p in imgs:
        split, city = p.parts[-3], p.parts[-2]
        m = re.fullmatch(r'([a-z]+)_(\d{6})_(\d{6})_leftImg8bit\.png', p.name)
        assert m and m[1] == city and m[3] == '000019', p.name
        stem = f'{city}_{m[2]}'
        lbl = root/'gtFine'/split/city/f'{stem}_000019_gtFine_labelIds.png'
        im, lb = Image.open(p), Image.open(lbl)
        assert (im.mode, im.size, lb.mode, lb.size) == ('RGB', (64, 32), 'L', (64, 32))
        ids = set(np.unique(np.asarray(lb)).tolist()); assert ids <= valid, ids - valid; seen |= ids
        for fr in (18, 19, 20): assert (root/'leftImg8bit_sequence'/split/city/f'{stem}_{fr:06d}_leftImg8bit.png').exists()
        # the labelled frame is also the sequence's frame 19, byte for byte
        assert (root/'leftImg8bit_sequence'/split/city/f'{stem}_000019_leftImg8bit.png').read_bytes() == p.read_bytes()
        for fr in (18, 19):
            fl = np.load(root/'flowGT'/split/city/f'{stem}_{fr:06d}_flow.npy')
            assert fl.shape == (2, 32, 64) and fl.dtype == np.float16 and np.isfinite(fl).all()
        assert not (root/'flowGT'/split/city/f'{stem}_000020_flow.npy').exists()
    assert {7, 11, 23} <= seen                  # road, building, sky in every street scene set
    assert seen & {0, 1, 2, 3, 4}               # void ids exercise the ignore mapping
    assert not list(root.rglob('*.tmp')) and not (root/'.synthcity.partial.json').exists()
    man = read_json(root/'synthcity.json')
    assert man['counts'] == dict(train=4, val=2, test=2, train_extra=0) and man['params']['size'] == [32, 64]
    assert man['cities']['val'] == ['frankfurt'] and man['cities']['test'] == ['berlin']

def test_flow_warps_back():
    "Frame t+1 sampled at p + flow(p) rebuilds frame t on the pixels still visible at t+1 (clean frames, no sensor noise)."
    ew, e0 = [], []
    for i in range(5):
        s = synthcity_sample(0, 'val', i, size=(128, 256), noise=False)
        f0, f1 = s[19], s[20]
        vis = flow_visible(f0['layer'], f1['layer'], f0['flow'])
        assert vis.mean() > 0.3
        ew.append(np.abs(warp_back(f1['img'], f0['flow']).astype(float) - f0['img'])[vis].mean())
        e0.append(np.abs(f1['img'].astype(float) - f0['img'])[vis].mean())
    ew, e0 = np.array(ew), np.array(e0)
    assert (ew < 4).all(), ew                       # a few grey levels: interpolation at texture edges
    mv = e0 > 4                                     # scenes where something moves noticeably
    assert mv.sum() >= 2 and ew[mv].mean() < 0.35*e0[mv].mean(), (ew, e0)

def test_manifest_last_and_resume(tmp_path, capsys):
    kw = dict(n_train=3, n_val=1, n_test=1, size=(32, 64))
    root = ensure_synthcity('ci', root=tmp_path/'sc', workers=0, progress=False, **kw)
    ref = _tree(root)
    # an interrupted generation: marker present, manifest and some files missing -> finished, not reused as is
    (root/'synthcity.json').unlink()
    for p in list(root.glob('flowGT/train/*/*.npy'))[:2] + list(root.glob('gtFine/val/*/*.png')): p.unlink()
    atomic_write_json(root/'.synthcity.partial.json', dict(params=json.loads(ref['synthcity.json'])['params']))
    ensure_synthcity('ci', root=root, workers=0, progress=False, **kw)
    assert 'incomplete' in capsys.readouterr().out
    assert _tree(root) == ref
    # a manifest of other parameters is an error naming the folder
    with pytest.raises(ValueError, match=str(root)): ensure_synthcity('ci', root=root, progress=False, seed=1, **kw)
    # an interrupted generation of other parameters: exactly the files its partial manifest lists are replaced
    (root/'synthcity.json').unlink()
    atomic_write_json(root/'.synthcity.partial.json', dict(params=dict(json.loads(ref['synthcity.json'])['params'], seed=7)))
    ensure_synthcity('ci', root=root, workers=0, progress=False, **kw)
    assert 'other parameters' in capsys.readouterr().out and _tree(root) == ref
    # a folder without manifest or partial manifest is not ours: refused, untouched (it used to be cleared)
    (root/'synthcity.json').unlink(); (root/'leftImg8bit'/'train'/'aachen'/'junk.png').write_bytes(b'x')
    before = _tree(root)
    with pytest.raises(FileExistsError, match=str(root)): ensure_synthcity('ci', root=root, workers=0, progress=False, **kw)
    assert _tree(root) == before

_KILL_SCRIPT = """
import sys
from sslseg.synthcity import make_synthcity
make_synthcity(sys.argv[1], 60, 0, 0, size=(64, 128), workers=1, progress=False)
"""

def test_killed_generation_is_not_complete(tmp_path):
    root = tmp_path/'sc'
    proc = subprocess.Popen([sys.executable, '-c', _KILL_SCRIPT, str(root)])
    t0 = time.time()
    while time.time() - t0 < 120 and len(list(root.glob('leftImg8bit_sequence/train/*/*.png'))) < 6: time.sleep(0.05)
    proc.send_signal(signal.SIGKILL); proc.wait()
    assert not (root/'synthcity.json').exists() and (root/'.synthcity.partial.json').exists()
    for p in root.rglob('*.png'): Image.open(p).load()   # every file written is whole
    kw = dict(n_train=60, n_val=0, n_test=0, size=(64, 128))
    ensure_synthcity('ci', root=root, workers=2, progress=False, **kw)
    assert (root/'synthcity.json').exists() and len(list(root.glob('leftImg8bit/train/*/*.png'))) == 60
    assert not list(root.rglob('.*.tmp'))

def test_synthaerial(tmp_path):
    a = make_synthaerial(tmp_path/'a', n_tiles=4, tile_size=(64, 48), seed=1, workers=0, progress=False)
    b = make_synthaerial(tmp_path/'b', n_tiles=4, tile_size=(64, 48), seed=1, workers=2, progress=False)
    ta, tb = _tree(a), _tree(b); assert ta == tb
    assert sorted(p.name for p in (a/'top').iterdir()) == sorted(f'top_mosaic_09cm_area{n}.tif' for n in VAIHINGEN_AREAS[:4])
    colours = {c for _, c in ISPRS_CLASSES}
    for n in VAIHINGEN_AREAS[:4]:
        im = Image.open(a/'top'/f'top_mosaic_09cm_area{n}.tif'); gt = Image.open(a/'gts_for_participants'/f'top_mosaic_09cm_area{n}.tif')
        assert (im.format, im.mode, im.size, gt.mode) == ('TIFF', 'RGB', (48, 64), 'RGB')
        assert {tuple(c) for c in np.asarray(gt).reshape(-1, 3)} <= colours
    man = read_json(a/'synthaerial.json'); assert man['areas'] == VAIHINGEN_AREAS[:4] and man['train_areas'] == [1, 3, 5, 7]
    root = ensure_synthaerial('ci', root=tmp_path/'c', workers=0, progress=False, n_tiles=2, tile_size=(32, 32))
    with pytest.raises(ValueError, match='synthaerial'): ensure_synthaerial('ci', root=root, progress=False, n_tiles=3, tile_size=(32, 32))

_ENSURE_SCRIPT = """
import sys
from sslseg.synthcity import ensure_synthcity
ensure_synthcity('ci', root=sys.argv[1], workers=0, progress=False, n_train=6, n_val=1, n_test=1, size=(32, 64))
"""

def test_concurrent_ensure(tmp_path):
    "Two processes asking for the same dataset at once (parallel notebook tests) generate it once, both succeed."
    root = tmp_path/'sc'
    procs = [subprocess.Popen([sys.executable, '-c', _ENSURE_SCRIPT, str(root)]) for _ in range(2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert (root/'synthcity.json').exists() and len(list(root.glob('leftImg8bit/*/*/*.png'))) == 8 + 8  # + 8 train_extra at ci


def _hashes(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob('*')) if p.is_file()}

def _real_cityscapes(root: Path) -> Path:
    "A hand-made Cityscapes tree (names SynthCity would also write), no manifest: someone's real dataset."
    for split, city in (('train', 'aachen'), ('val', 'frankfurt'), ('test', 'berlin')):
        for k in range(2):
            st = f'{city}_{k:06d}_000019'
            for d, name, arr in (('leftImg8bit', f'{st}_leftImg8bit.png', np.full((4, 6, 3), 9*k, np.uint8)),
                                 ('gtFine', f'{st}_gtFine_labelIds.png', np.full((4, 6), 7, np.uint8)),
                                 ('gtFine', f'{st}_gtFine_polygons.json', None),
                                 ('leftImg8bit_sequence', f'{city}_{k:06d}_000018_leftImg8bit.png', np.zeros((4, 6, 3), np.uint8))):
                f = root/d/split/city/name; f.parent.mkdir(parents=True, exist_ok=True)
                if arr is None: f.write_text('{"objects": []}')
                else: Image.fromarray(arr).save(f)
    (root/'README').write_text('my data')
    return root

@pytest.mark.parametrize('how', ['ensure', 'make', 'ensure_aerial'])
def test_generator_never_deletes_a_real_dataset(tmp_path, how):
    "Pointed at a real Cityscapes tree without a manifest, the generator refuses, names the folder, and every file stays."
    root = _real_cityscapes(tmp_path/'cityscapes')
    before = _hashes(root)
    kw = dict(n_train=2, n_val=2, n_test=2, size=(4, 6))
    with pytest.raises((FileExistsError, ValueError), match=re.escape(str(root))):
        if how == 'ensure': ensure_synthcity('ci', root=root, workers=0, progress=False, **kw)
        elif how == 'make': make_synthcity(root, **kw, workers=0, progress=False)
        else: ensure_synthaerial('ci', root=root, workers=0, progress=False, n_tiles=2, tile_size=8)
    assert _hashes(root) == before
    assert not (root/'.synthcity.partial.json').exists() and not (root/'synthcity.json').exists()

def test_synth_validation_errors(tmp_path):
    "Bad generator arguments are ValueErrors naming the parameter (they were asserts), raised before anything is written."
    with pytest.raises(ValueError, match='n_frames=1'): make_synthcity(tmp_path/'a', 1, 0, 0, n_frames=1)
    with pytest.raises(ValueError, match='n_train=-1'): make_synthcity(tmp_path/'a', -1, 0, 0)
    with pytest.raises(ValueError, match='size=0'): make_synthcity(tmp_path/'a', 1, 0, 0, size=0)
    with pytest.raises(ValueError, match='n_tiles=0'): make_synthaerial(tmp_path/'a', n_tiles=0)
    with pytest.raises(ValueError, match="tile_size=\\(8, 0\\)"): make_synthaerial(tmp_path/'a', n_tiles=1, tile_size=(8, 0))
    with pytest.raises(ValueError, match="unknown scale 'big'"): ensure_synthcity('big', root=tmp_path/'a')
    assert not (tmp_path/'a').exists()
