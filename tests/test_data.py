"Data layer on trees written by hand in the real layouts: exact label decoding, every bad input, splits."
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from sslseg.classes import CAMVID, CITYSCAPES, VAIHINGEN, load_class_table, vaihingen_table
from sslseg.data import (CityscapesSeg, CityscapesSequence, FolderSeg, ImageReadError, LabelledSubset, UnlabelledImages,
                         camvid, check_disjoint, ids_digest, make_split, read_split, split_ids, split_path)
from sslseg.aerial import CropClassLabels, RandomCrops, VaihingenTiles, vaihingen_split, vaihingen_tile_ids
from sslseg.transforms import SequenceCrop, seg_train_transform

# labelId -> trainId, cityscapesScripts helpers/labels.py
TRAIN_ID = {0: 255, 1: 255, 2: 255, 3: 255, 4: 255, 5: 255, 6: 255, 7: 0, 8: 1, 9: 255, 10: 255, 11: 2, 12: 3, 13: 4,
            14: 255, 15: 255, 16: 255, 17: 5, 18: 255, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
            27: 14, 28: 15, 29: 255, 30: 255, 31: 16, 32: 17, 33: 18}
H, W = 8, 34


def png(p, a):
    p = Path(p); p.parent.mkdir(parents=True, exist_ok=True); Image.fromarray(a).save(p); return p


def cs_tree(root, frames=(19, 20), flow=True):
    "Two labelled frames: row r of frame k holds label id (r*34 + x + k) % 34, so every id 0..33 occurs."
    root = Path(root)
    for k, (city, seq) in enumerate([('aachen', 0), ('bremen', 3)]):
        stem = f"{city}_{seq:06d}_000019"
        ids = ((np.arange(W)[None] + np.arange(H)[:, None] + k) % 34).astype(np.uint8)
        img = np.stack([ids*7, ids*3, np.full_like(ids, 9*k)], -1).astype(np.uint8)
        png(root/'leftImg8bit'/'train'/city/f"{stem}_leftImg8bit.png", img)
        png(root/'gtFine'/'train'/city/f"{stem}_gtFine_labelIds.png", ids)
        for f in frames:
            png(root/'leftImg8bit_sequence'/'train'/city/f"{city}_{seq:06d}_{f:06d}_leftImg8bit.png", img)
            if flow:
                (root/'flowGT'/'train'/city).mkdir(parents=True, exist_ok=True)
                np.save(root/'flowGT'/'train'/city/f"{city}_{seq:06d}_{f:06d}_flow.npy", np.ones((2, H, W), np.float16))
    return root


VH_COLS = np.array([(255, 255, 255), (0, 0, 255), (0, 255, 255), (0, 255, 0), (255, 255, 0), (255, 0, 0)], np.uint8)


def vh_tree(root, tiles=(1, 2, 3, 5, 10, 11), h=24, w=30):
    root = Path(root)
    for n in tiles:
        lab = (np.arange(h*w).reshape(h, w)//(h*w//6 + 1) + n) % 6
        png(root/'top'/f"top_mosaic_09cm_area{n}.tif", (np.random.default_rng(n).integers(0, 255, (h, w, 3))).astype(np.uint8))
        png(root/'gts_for_participants'/f"top_mosaic_09cm_area{n}.tif", VH_COLS[lab])
    return root


# ---------------------------------------------------------------- Cityscapes
def test_cityscapes_train_ids_exact(tmp_path):
    ds = CityscapesSeg(cs_tree(tmp_path), 'train')
    assert ds.ids == ['aachen_000000_000019', 'bremen_000003_000019'] and ds.num_classes == 19
    for k in range(2):
        img, msk = ds[k]
        assert isinstance(img, tv_tensors.Image) and img.dtype == torch.uint8 and img.shape == (3, H, W)
        assert isinstance(msk, tv_tensors.Mask) and msk.dtype == torch.int64 and msk.shape == (H, W)
        ids = (np.arange(W)[None] + np.arange(H)[:, None] + k) % 34
        assert (msk.numpy() == np.vectorize(TRAIN_ID.get)(ids)).all()
    assert CITYSCAPES.encode_ids(np.array([-1])).tolist() == [255]  # license plate
    assert [CITYSCAPES.colors[TRAIN_ID[26]], CITYSCAPES.names[TRAIN_ID[26]]] == [(0, 0, 142), 'car']


def test_cityscapes_missing_folders(tmp_path):
    root = cs_tree(tmp_path)
    with pytest.raises(FileNotFoundError, match='leftImg8bit/val: Cityscapes leftImg8bit folder not found'):
        CityscapesSeg(root, 'val')
    (root/'leftImg8bit'/'val').mkdir()
    with pytest.raises(FileNotFoundError, match='gtFine/val: Cityscapes gtFine folder not found'):
        CityscapesSeg(root, 'val')


def test_cityscapes_unmatched_pairs(tmp_path):
    root = cs_tree(tmp_path)
    extra = png(root/'leftImg8bit/train/aachen/aachen_000009_000019_leftImg8bit.png', np.zeros((H, W, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match='images without a label.*aachen_000009_000019_leftImg8bit.png'):
        CityscapesSeg(root, 'train')
    extra.unlink()
    png(root/'gtFine/train/bremen/bremen_000001_000019_gtFine_labelIds.png', np.zeros((H, W), np.uint8))
    with pytest.raises(FileNotFoundError, match='labels without an image.*bremen_000001_000019_gtFine_labelIds.png'):
        CityscapesSeg(root, 'train')


def test_cityscapes_bad_files(tmp_path):
    root = cs_tree(tmp_path)
    lp = root/'gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png'
    ip = root/'leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png'
    png(lp, np.zeros((H, W + 1), np.uint8))
    with pytest.raises(ValueError, match=r'aachen_000000_000019_gtFine_labelIds.png: label size 35x8 differs from image .*leftImg8bit.png size 34x8'):
        CityscapesSeg(root, 'train')[0]
    lab = np.full((H, W), 7, np.uint8); lab[0, :3] = 40; lab[1, 0] = 200
    png(lp, lab)
    with pytest.raises(ValueError, match=r'labelIds.png: label ids not in the class table .cityscapes.: 40 \(3 px\), 200 \(1 px\)'):
        CityscapesSeg(root, 'train')[0]
    png(lp, np.full((H, W), 7, np.uint8))
    good = ip.read_bytes()
    ip.write_bytes(b'not a png at all')
    with pytest.raises(ImageReadError, match='aachen_000000_000019_leftImg8bit.png: cannot read image'):
        CityscapesSeg(root, 'train')[0]
    ip.write_bytes(good[:len(good)//2])  # truncated
    with pytest.raises(ImageReadError, match='leftImg8bit.png: cannot read image'):
        CityscapesSeg(root, 'train')[0]
    ip.write_bytes(good[:40] + bytes([good[40] ^ 0xFF]) + good[41:])  # flipped byte: CRC error
    with pytest.raises(ImageReadError, match='leftImg8bit.png: cannot read image'):
        CityscapesSeg(root, 'train')[0]
    ip.write_bytes(good)
    CityscapesSeg(root, 'train')[0]
    assert issubclass(ImageReadError, OSError)


def test_cityscapes_sequence(tmp_path):
    root = cs_tree(tmp_path)
    s = CityscapesSequence(root, 'train', offsets=(0, 1), with_flow=True)[1]
    assert s['frames'].shape == (2, 3, H, W) and s['frames'].dtype == torch.uint8
    assert s['flow'].shape == (1, 2, H, W) and s['flow'].dtype == torch.float32 and s['id'] == 'bremen_000003_000019'
    assert (s['msk'] == CityscapesSeg(root, 'train')[1][1]).all()
    assert 'flow' not in CityscapesSequence(root, 'train')[0]
    t = CityscapesSequence(root, 'train', with_flow=True, transform=SequenceCrop(6, hflip=False))[0]
    assert t['frames'].shape == (2, 3, 6, 6) and t['flow'].shape == (1, 2, 6, 6) and t['msk'].shape == (6, 6)
    with pytest.raises(FileNotFoundError, match=r'missing sequence frames: .*aachen_000000_000018_leftImg8bit.png'):
        CityscapesSequence(root, 'train', offsets=(-1, 0))
    with pytest.raises(ValueError, match='consecutive'):
        CityscapesSequence(root, 'train', offsets=(0, 2), with_flow=True)
    (root/'flowGT/train/bremen/bremen_000003_000019_flow.npy').unlink()
    with pytest.raises(FileNotFoundError, match=r'missing flow files: .*bremen_000003_000019_flow.npy'):
        CityscapesSequence(root, 'train', with_flow=True)
    np.save(root/'flowGT/train/bremen/bremen_000003_000019_flow.npy', np.zeros((2, H, 3), np.float16))
    with pytest.raises(ValueError, match=r'bremen_000003_000019_flow.npy: flow shape \(2, 8, 3\)'):
        CityscapesSequence(root, 'train', with_flow=True)[1]
    (root/'flowGT/train/bremen/bremen_000003_000019_flow.npy').write_bytes(b'junk')
    with pytest.raises(ImageReadError, match='bremen_000003_000019_flow.npy: cannot read flow'):
        CityscapesSequence(root, 'train', with_flow=True)[1]
    import shutil; shutil.rmtree(root/'flowGT')
    with pytest.raises(FileNotFoundError, match='flowGT/train: Cityscapes flowGT folder not found'):
        CityscapesSequence(root, 'train', with_flow=True)
    shutil.rmtree(root/'leftImg8bit_sequence')
    with pytest.raises(FileNotFoundError, match='leftImg8bit_sequence/train: Cityscapes leftImg8bit_sequence folder not found'):
        CityscapesSequence(root, 'train')


# ---------------------------------------------------------------- Vaihingen
def test_vaihingen_colours(tmp_path):
    root = vh_tree(tmp_path)
    ds = VaihingenTiles(root, [1, 10])
    assert ds.ids == [1, 10] and ds.num_classes == 5
    img, msk = ds[1]
    lab = (np.arange(24*30).reshape(24, 30)//(24*30//6 + 1) + 10) % 6
    assert (msk.numpy() == np.where(lab == 5, 255, lab)).all()
    assert (VaihingenTiles(root, [10], table=vaihingen_table(True))[0][1].numpy() == lab).all()
    gp = root/'gts_for_participants/top_mosaic_09cm_area2.tif'
    g = VH_COLS[np.zeros((24, 30), int)]; g[0, :4] = (12, 34, 56)
    png(gp, g)
    with pytest.raises(ValueError, match=r'area2.tif: label colours not in the class table .vaihingen.: \(12, 34, 56\) \(4 px\)'):
        VaihingenTiles(root, [2])[0]
    gp.unlink()
    with pytest.raises(FileNotFoundError, match='tiles without a label: .*gts_for_participants/top_mosaic_09cm_area2.tif'):
        VaihingenTiles(root, [2])
    with pytest.raises(KeyError, match='ids not in the dataset: 4'):
        VaihingenTiles(root, [4])


def test_vaihingen_split_protocol(tmp_path):
    root = vh_tree(tmp_path/'vh')
    a = vaihingen_split(root, 0, 2, 2, 1, split_root=tmp_path/'s')
    key = ids_digest([1, 2, 3, 5, 10, 11])
    assert a['path'] == tmp_path/'s/vaihingen'/key/'seed0.json'
    assert json.loads(a['path'].read_text())['labelled'] == a['labelled']
    assert vaihingen_split(root, 0, 2, 2, 1, split_root=tmp_path/'s2') == {**a, 'path': tmp_path/'s2/vaihingen'/key/'seed0.json'}
    parts = a['labelled'] + a['weak'] + a['val'] + a['rest']
    assert sorted(parts) == [1, 2, 3, 5, 10, 11] and len(set(parts)) == 6
    assert any(vaihingen_split(root, s, 2, 2, 1, split_root=tmp_path/'s')['labelled'] != a['labelled'] for s in range(1, 6))
    with pytest.raises(ValueError, match=r'n_labelled\+n_weak\+n_val = 33 > 6 tiles'):
        vaihingen_split(root, 0, split_root=tmp_path/'s3')
    with pytest.raises(FileNotFoundError, match='top: Vaihingen top folder not found'):
        vaihingen_split(tmp_path/'nothing', 0)


def test_vaihingen_crops_and_weak_labels(tmp_path):
    tiles = VaihingenTiles(vh_tree(tmp_path), [1, 2])
    rc = RandomCrops(tiles, 16, n_per_epoch=5, seed=3, transform=seg_train_transform(16, scale=None, hflip=False))
    x, y = rc[2]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert (rc[2][1] == y).all() and len(rc) == 5
    cl = CropClassLabels(tiles, 12, min_pixels=1)
    for i in range(len(cl)):
        img, lab = cl[i]
        (n, t, l) = cl.ids[i]
        m = tiles[tiles.index_of(n)][1][t:t + 12, l:l + 12]
        want = torch.zeros(5); want[m[m != 255].unique()] = 1
        assert img.shape == (3, 12, 12) and (lab == want).all()


# ---------------------------------------------------------------- folders
def test_camvid_with_class_table(tmp_path):
    (tmp_path/'classes.json').write_text(json.dumps(dict(names=['a', 'b', 'c'], colors=[[1, 1, 1], [2, 2, 2], [3, 3, 3]],
                                                         ids=[5, 6, 7], void_ids=[0])))
    table = load_class_table(tmp_path/'classes.json')
    for split in ('train', 'trainannot', 'val', 'valannot', 'test', 'testannot'):
        (tmp_path/split).mkdir()
    lab = np.array([[5, 6, 7, 0]] * 3, np.uint8)
    png(tmp_path/'train/f001.png', np.zeros((3, 4, 3), np.uint8)); png(tmp_path/'trainannot/f001.png', lab)
    ds = camvid(tmp_path, 'train', table)
    assert ds[0][1].tolist() == [[0, 1, 2, 255]] * 3 and ds.classes.name == 'classes'
    with pytest.raises(FileNotFoundError, match=r'val: no images found'):
        camvid(tmp_path, 'val', table)
    png(tmp_path/'trainannot/f002.png', lab)
    with pytest.raises(FileNotFoundError, match='labels without an image.*trainannot/f002.png'):
        camvid(tmp_path, 'train', table)
    png(tmp_path/'trainannot/f002.png', np.array([[5, 9]], np.uint8)); png(tmp_path/'train/f002.png', np.zeros((1, 2, 3), np.uint8))
    with pytest.raises(ValueError, match=r'f002.png: label ids not in the class table .classes.: 9 \(1 px\)'):
        camvid(tmp_path, 'train', table)[1]
    assert camvid(tmp_path, 'train').classes is CAMVID
    # RGB label files go through the colours
    png(tmp_path/'rgb/l/x.png', np.array([[[1, 1, 1], [3, 3, 3]]], np.uint8)); png(tmp_path/'rgb/i/x.jpg', np.zeros((1, 2, 3), np.uint8))
    assert FolderSeg(tmp_path/'rgb/i', tmp_path/'rgb/l', table, img_suffix='.jpg')[0][1].tolist() == [[0, 2]]
    with pytest.raises(FileNotFoundError, match='nope: label folder not found'):
        FolderSeg(tmp_path/'rgb/i', tmp_path/'nope', table)


def test_subsets_and_unlabelled(tmp_path):
    ds = CityscapesSeg(cs_tree(tmp_path), 'train')
    u = UnlabelledImages(ds)
    assert len(u) == 2 and u[1].shape == (3, H, W)
    s = LabelledSubset(ds, ['bremen_000003_000019'])
    assert len(s) == 1 and (s[0][1] == ds[1][1]).all() and s.num_classes == 19
    assert (UnlabelledImages(s)[0] == ds[1][0]).all()
    (tmp_path/'gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png').write_bytes(b'broken')
    assert u[0].shape == (3, H, W)  # pretraining never reads the labels
    with pytest.raises(ImageReadError, match='aachen_000000_000019_gtFine_labelIds.png: cannot read image'):
        ds[0]


# ---------------------------------------------------------------- splits
def test_split_nesting_determinism(tmp_path):
    ids = [f"c_{i:06d}_000019" for i in range(300)]
    for seed in (0, 1, 2):
        sets = [set(read_split(make_split(ids[::-1], f, seed, tmp_path))) for f in (0.01, 0.1, 0.5, 1.0)]
        assert [len(s) for s in sets] == [3, 30, 150, 300]
        assert sets[0] <= sets[1] <= sets[2] <= sets[3]
    p = make_split(ids, 0.1, 0, tmp_path)
    assert p == split_path(ids, 0.1, 0, tmp_path) == tmp_path/ids_digest(ids)/'0.1/seed0.json'
    assert make_split(ids, 0.1, 0, tmp_path/'again').read_text() == p.read_text()
    assert p.read_text() != (tmp_path/ids_digest(ids)/'0.1/seed1.json').read_text()
    d = json.loads(p.read_text())
    assert (d['pool'], d['n_pool'], d['fraction'], d['seed'], d['size']) == (ids_digest(ids), 300, 0.1, 0, 30)
    assert d['ids'] == sorted(d['ids'])
    assert not list(tmp_path.rglob('*.tmp'))


def test_split_errors(tmp_path):
    ids = [str(i) for i in range(40)]
    for f in (0, -0.1, 1.01, float('nan')):
        with pytest.raises(ValueError, match=rf'fraction={f!r} must be in \(0, 1\] \(N=40\)'):
            make_split(ids, f, 0, tmp_path)
    with pytest.raises(ValueError, match=r'fraction=0.01 of N=40 samples rounds to 0 samples'):
        make_split(ids, 0.01, 0, tmp_path)
    p = make_split(ids, 0.5, 0, tmp_path)
    d = json.loads(p.read_text()); d['ids'] = sorted(set(ids) - set(d['ids'])); p.write_text(json.dumps(d))
    with pytest.raises(ValueError, match='exists with different ids'):  # written once: a different file is never overwritten
        make_split(ids, 0.5, 0, tmp_path)
    with pytest.raises(ValueError, match=r'seed0.json: split file does not match: .*ids not in the pool'):
        read_split(p, ids[:5])
    with pytest.raises(FileNotFoundError, match='seed9.json: no such split file'):
        read_split(tmp_path/'seed9.json')
    ds = CityscapesSeg(cs_tree(tmp_path/'cs'), 'train')
    sp = split_path(ds.ids, 0.5, 0, tmp_path/'sp'); sp.parent.mkdir(parents=True)
    sp.write_text(json.dumps(dict(pool=ids_digest(ds.ids), n_pool=2, fraction=0.5, seed=0, size=1, ids=['zurich_000000_000019'])))
    with pytest.raises(ValueError, match='ids not in the pool: zurich_000000_000019'):
        split_ids(ds, 0.5, 0, tmp_path/'sp')
    assert split_ids(ds, 0.5, 1, tmp_path/'sp')[0] in ds.ids


def _eight_then_sixteen(tmp_path):
    "A SynthCity-like tree with 8 training images, and a copy of it with 16."
    root = tmp_path/'cs8'
    for k in range(8): _one_frame(root, 'aachen', k)
    big = tmp_path/'cs16'
    for k in range(16): _one_frame(big, 'aachen', k)
    return CityscapesSeg(root, 'train'), CityscapesSeg(big, 'train')


def _one_frame(root, city, seq):
    stem = f"{city}_{seq:06d}_000019"
    png(Path(root)/'leftImg8bit/train'/city/f"{stem}_leftImg8bit.png", np.zeros((2, 3, 3), np.uint8))
    png(Path(root)/'gtFine/train'/city/f"{stem}_gtFine_labelIds.png", np.full((2, 3), 7, np.uint8))


def test_split_of_other_data_is_refused(tmp_path):
    "Issue 9 problem 3: the 16-image copy must not use the 8-image split (it used to: '4 labelled of 16' as fraction 0.5)."
    ds8, ds16 = _eight_then_sixteen(tmp_path)
    ids8 = split_ids(ds8, 0.5, 0, tmp_path/'sp', dataset='synthcity')
    assert len(ids8) == 4
    assert len(split_ids(ds16, 0.5, 0, tmp_path/'sp', dataset='synthcity')) == 8  # its own file, keyed by its ids
    # the 8-image file put where the 16-image pool's split lives (copied data, copied splits): refused, naming the file
    p8, p16 = split_path(ds8.ids, 0.5, 0, tmp_path/'sp'), split_path(ds16.ids, 0.5, 0, tmp_path/'sp')
    assert p8 != p16
    p16.write_bytes(p8.read_bytes())
    with pytest.raises(ValueError, match=rf'{p16}: split file does not match: it was drawn from a pool of 8 ids .* this pool has 16 ids'):
        split_ids(ds16, 0.5, 0, tmp_path/'sp')


def test_split_with_too_many_ids_is_refused(tmp_path):
    "Issue 9 problem 3: a split file holding all 8 ids presented as fraction 0.1 is refused."
    ds8, _ = _eight_then_sixteen(tmp_path)
    p = split_path(ds8.ids, 0.1, 0, tmp_path/'sp'); p.parent.mkdir(parents=True)
    p.write_text(json.dumps(dict(pool=ids_digest(ds8.ids), n_pool=8, fraction=0.1, seed=0, size=8, ids=ds8.ids)))
    with pytest.raises(ValueError, match=rf'{p}: split file does not match: size 8, but fraction 0.1 of 8 ids is 1'):
        split_ids(ds8, 0.1, 0, tmp_path/'sp')
    p.write_text(json.dumps(dict(pool=ids_digest(ds8.ids), n_pool=8, fraction=1.0, seed=0, size=8, ids=ds8.ids)))
    with pytest.raises(ValueError, match=rf'{p}: split file does not match: fraction 1.0, not 0.1'):
        split_ids(ds8, 0.1, 0, tmp_path/'sp')
    p.write_text(json.dumps(dict(pool=ids_digest(ds8.ids), n_pool=8, fraction=0.1, seed=3, size=1, ids=ds8.ids[:1])))
    with pytest.raises(ValueError, match=rf'{p}: split file does not match: seed 3, not 0'):
        split_ids(ds8, 0.1, 0, tmp_path/'sp')


def test_unreadable_split_file_is_named(tmp_path):
    "Issue 9 problem 3: binary garbage in a split file is an error naming the file (it was a bare UnicodeDecodeError)."
    ds8, _ = _eight_then_sixteen(tmp_path)
    p = split_path(ds8.ids, 0.5, 0, tmp_path/'sp'); p.parent.mkdir(parents=True)
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match=rf'{p}: not a split file'):
        split_ids(ds8, 0.5, 0, tmp_path/'sp')
    p.write_text('[1, 2')
    with pytest.raises(ValueError, match=rf'{p}: not a split file'):
        split_ids(ds8, 0.5, 0, tmp_path/'sp')
    vh = vh_tree(tmp_path/'vh')
    q = vaihingen_split(vh, 0, 2, 2, 1, split_root=tmp_path/'vs')['path']
    q.write_bytes(b'\xff\xfe\x00')
    with pytest.raises(ValueError, match=rf'{q}: not a Vaihingen split file'):
        vaihingen_split(vh, 0, 2, 2, 1, split_root=tmp_path/'vs')


# ---------------------------------------------------------------- disjoint splits
def test_check_disjoint_every_dataset_type(tmp_path):
    "val/test overlap is found for LabelledSubset pairs too (train.py's _check_disjoint looked for a .root they lack)."
    ds = CityscapesSeg(cs_tree(tmp_path), 'train')
    a, b = LabelledSubset(ds, ds.ids[:1]), LabelledSubset(ds, ds.ids[1:])
    check_disjoint(a, b)
    with pytest.raises(ValueError, match=r'val and test share 1 samples .*bremen_000003_000019_leftImg8bit.png'):
        check_disjoint(LabelledSubset(ds, ds.ids), b)
    # the same files under another path (a symlinked copy) are the same samples
    (tmp_path/'link').symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(ValueError, match='share 2 samples'):
        check_disjoint(ds, CityscapesSeg(tmp_path/'link', 'train'))
    with pytest.raises(ValueError, match='share 1 samples'):
        check_disjoint(LabelledSubset(LabelledSubset(ds, ds.ids), ds.ids[:1]), torch.utils.data.Subset(a, [0]), names=('val', 'test'))
    tiles = VaihingenTiles(vh_tree(tmp_path/'vh'), [1, 2])
    with pytest.raises(ValueError, match='share 1 samples'):
        check_disjoint(RandomCrops(tiles, 8, 3), VaihingenTiles(tmp_path/'vh', [2, 3]))
    check_disjoint(CropClassLabels(tiles, 8, 1), VaihingenTiles(tmp_path/'vh', [3, 5]))
    with pytest.raises(TypeError, match='cannot tell which samples'):
        check_disjoint(ds, [torch.zeros(1)])


# ---------------------------------------------------------------- generated data (sslseg.synthcity/synthaerial, ci size)
@pytest.fixture(scope='module')
def synthcity(tmp_path_factory):
    from sslseg.synthcity import ensure_synthcity
    return Path(ensure_synthcity('ci', root=tmp_path_factory.mktemp('sc')/'synthcity-ci', workers=0, progress=False))


def test_synthcity_loads(synthcity):
    root = synthcity
    for split in ('train', 'val', 'test'):
        ds = CityscapesSeg(root, split)
        assert len(ds) > 0
        img, msk = ds[0]
        assert img.shape[1:] == msk.shape and set(msk.unique().tolist()) <= set(range(19)) | {255}
    s = CityscapesSequence(root, 'train', offsets=(-1, 0, 1), with_flow=True)[0]
    assert s['frames'].shape[:2] == (3, 3) and s['flow'].shape == (2, 2, *s['msk'].shape)


def test_synthcity_flow_survives_sequence_crop(synthcity):
    "frame t+1 warped back by the (cropped, maybe flipped, rescaled) flow matches frame t better than unwarped."
    from sslseg import synth
    seq = CityscapesSequence(synthcity, 'train', offsets=(0, 1), with_flow=True)
    torch.manual_seed(0)
    flips, err = set(), np.zeros(3)
    for i in range(6):
        s = SequenceCrop((48, 96), scale=(0.9, 1.1), normalize=False)(seq[i % len(seq)])
        flips.add(bool(s['flip']))
        f0, f1 = [s['frames'][k].permute(1, 2, 0).numpy().astype(np.float32) for k in (0, 1)]
        fl = s['flow'][0].numpy()
        if np.abs(fl).mean() < 0.5: continue
        warped = synth.warp_back(f1, fl)
        sl = (slice(4, -4), slice(8, -8))  # keep away from borders the flow leaves
        bad = fl.copy(); bad[0] = -bad[0]  # the wrong sign of dx (what a flip that forgot to negate dx gives)
        err += [np.abs(a - f0)[sl].mean() for a in (warped, f1, synth.warp_back(f1, bad))]
    assert flips == {True, False}
    assert err[0] < err[1] and err[0] < err[2], err  # per-frame noise and occlusions: compare summed over the crops


def test_synthaerial_loads(tmp_path):
    from sslseg.synthaerial import ensure_synthaerial
    root = Path(ensure_synthaerial('ci', root=tmp_path/'synthaerial-ci', workers=0, progress=False))
    assert len(vaihingen_tile_ids(root)) == 33
    sp = vaihingen_split(root, 0, split_root=tmp_path/'splits')  # the paper protocol: 3 labelled, 23 weak, 7 val
    assert (len(sp['labelled']), len(sp['weak']), len(sp['val']), sp['rest']) == (3, 23, 7, [])
    tiles = VaihingenTiles(root, sp['labelled'])
    img, msk = tiles[0]
    assert img.shape[1:] == msk.shape and set(msk.unique().tolist()) <= set(range(5)) | {255}
    weak = CropClassLabels(VaihingenTiles(root, sp['weak'][:2]), 32, 16)
    assert len(weak) > 0 and weak.labels.sum() > 0
