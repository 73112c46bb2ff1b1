"The dataset registry (sslseg.datasets) on trees written here in the real layouts, and on SynthAerial at the ci scale."
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sslseg.classes import CAMVID
from sslseg.data import check_disjoint, ids_digest
from sslseg.datasets import DATASETS, DatasetEntry, SegData, get_dataset, list_datasets, register_dataset


def png(p, a):
    p = Path(p); p.parent.mkdir(parents=True, exist_ok=True); Image.fromarray(a).save(p); return p


def _labels(k, h=6, w=8, n=11):
    "Label map k: row r holds id (r + k) % n, so each file's content is known."
    return ((np.arange(h)[:, None] + k + np.zeros((1, w), int)) % n).astype(np.uint8)


def camvid_tree(root, counts=(('train', 4), ('val', 2), ('test', 3))):
    "SegNet layout: {split}/ RGB images, {split}annot/ label ids 0..10, 11 = void."
    root = Path(root); k = 0
    for split, n in counts:
        for i in range(n):
            lab = _labels(k); lab[0, 0] = 11  # one void pixel
            png(root/split/f'0001TP_{k:06d}.png', np.stack([lab*20, lab*10, np.full_like(lab, k)], -1))
            png(root/f'{split}annot'/f'0001TP_{k:06d}.png', lab); k += 1
    return root


def test_camvid_by_name(tmp_path):
    d = get_dataset('camvid').load(camvid_tree(tmp_path/'CamVid'), crop_size=(4, 6), split_root=tmp_path/'splits')
    assert isinstance(d, SegData) and d.classes is CAMVID and d.scale is None and d.predict_fn is None
    assert (d.selected, d.reported) == ('val', 'test') and (len(d.pool), len(d.val), len(d.test)) == (4, 2, 3)
    img, msk = d.test[0]  # test file k=6, full size, evaluation transform
    want = torch.from_numpy(_labels(6).astype(np.int64)); want[0, 0] = 255
    assert img.shape == (3, 6, 8) and img.dtype == torch.float32 and torch.equal(msk, want)
    train, info = d.labelled(0.5, 0)
    assert (len(train), info['n_labelled'], info['n_pool']) == (2, 2, 4)
    x, y = train[0]
    assert x.shape == (3, 4, 6) and y.dtype == torch.int64 and set(y.unique().tolist()) <= set(range(11)) | {255}
    split = json.loads(Path(info['split_file']).read_text())
    assert split['pool'] == d.identity['pool'] == ids_digest(d.pool.ids) and split['ids'] == train.ids
    assert set(d.labelled(0.25, 0)[0].ids) <= set(train.ids)  # nested
    assert d.identity == dict(dataset='camvid', scale=None, classes='camvid', pool=ids_digest(d.pool.ids),
                              val=ids_digest(d.val.ids), test=ids_digest(d.test.ids), n_pool=4, n_val=2, n_test=3,
                              unlabelled=ids_digest(d.pool.ids), n_unlabelled=4)  # no unlabelled pool of its own: the training images
    u = d.unlabelled(lambda im: im)
    assert len(u) == 4 and u[0].dtype == torch.uint8 and u[0].shape == (3, 6, 8)
    e = d.eval_subset(1)
    assert (len(e.val), len(e.test), e.identity['n_test'], len(e.pool)) == (1, 1, 1, 4)
    check_disjoint(e.val, e.test)


def test_folder_with_class_table(tmp_path):
    root = tmp_path/'mine'
    table = dict(names=['ground', 'thing'], colors=[[10, 10, 10], [200, 0, 0]], ids=[3, 9], void_ids=[0], name='mine')
    (root/'elsewhere').mkdir(parents=True); (root/'elsewhere/t.json').write_text(json.dumps(table))
    for split, n in (('train', 5), ('val', 2), ('test', 2)):
        for i in range(n):
            lab = np.full((5, 7), 3, np.uint8); lab[:, i % 7] = 9; lab[4, 6] = 0
            png(root/'images'/split/f'{split}{i}.png', np.zeros((5, 7, 3), np.uint8)); png(root/'labels'/split/f'{split}{i}.png', lab)
    with pytest.raises(FileNotFoundError, match='classes.json: no such class table'):
        get_dataset('folder').load(root)
    d = get_dataset('folder').load(root, class_table=root/'elsewhere/t.json', crop_size=4, split_root=tmp_path/'s')
    assert d.classes.name == 'mine' and d.classes.num_classes == 2 and (d.selected, d.reported) == ('val', 'test')
    _, msk = d.val[1]
    want = torch.zeros(5, 7, dtype=torch.int64); want[:, 1] = 1; want[4, 6] = 255
    assert torch.equal(msk, want)
    (root/'classes.json').write_text(json.dumps(table))  # the default place
    tr, info = get_dataset('folder').load(root, crop_size=4, split_root=tmp_path/'s').labelled(0.4, 1)
    assert info['n_labelled'] == 2 and tr[0][0].shape == (3, 4, 4)
    (root/'images/test/train0.png').write_bytes((root/'images/train/train0.png').read_bytes())
    (root/'labels/test/train0.png').write_bytes((root/'labels/train/train0.png').read_bytes())
    d = get_dataset('folder').load(root, crop_size=4)  # same names in two splits are still different files
    assert len(d.test) == 3


@pytest.fixture(scope='module')
def aerial_root(tmp_path_factory):
    mp = pytest.MonkeyPatch(); root = tmp_path_factory.mktemp('data'); mp.setenv('SSLSEG_DATA', str(root))
    yield root
    mp.undo()


def test_synthaerial_sliding_window(aerial_root, tmp_path):
    d = get_dataset('synthaerial').load(scale='ci', crop_size=48, n_crops=6, split_root=tmp_path/'s')
    assert Path(d.root) == aerial_root/'synthaerial-ci' and d.scale == 'ci' and d.classes.name == 'vaihingen'
    assert (d.selected, d.reported, len(d.test), len(d.val), len(d.pool)) == ('train-holdout', 'val', 7, 4, 22)
    tr, info = d.labelled(0.1, 0)
    assert (len(tr), info['n_labelled']) == (6, 2)
    x, y = tr[3]
    assert x.shape == (3, 48, 48) and y.shape == (48, 48)
    check_disjoint(tr, d.test); check_disjoint(tr, d.val)
    # the selection tiles are training tiles, never the 7 validation tiles that are reported
    from sslseg.aerial import vaihingen_split
    sp = vaihingen_split(d.root, 0, split_root=tmp_path/'s', name='synthaerial')
    assert d.test.ids == sp['val'] and not set(d.val.ids) & set(sp['val'])
    img, _ = d.test[0]
    assert img.shape == (3, 128, 128)
    w = torch.randn(5, 3)
    pointwise = lambda z: torch.einsum('kc,bchw->bkhw', w, z)
    calls = []
    counted = lambda z: (calls.append(tuple(z.shape)), pointwise(z))[1]
    out = d.predict_fn(counted, img[None])
    assert out.shape == (1, 5, 128, 128) and torch.allclose(out, pointwise(img[None]), atol=1e-5)
    assert all(s[-2:] == (48, 48) for s in calls)  # the model only ever saw windows of crop_size
    u = d.unlabelled(lambda im: im[:, :8, :8])
    assert len(u) == 26  # all training tiles (pool + selection), never the reported ones


def test_registry_errors(tmp_path):
    assert list_datasets() == ['camvid', 'cityscapes', 'folder', 'synthaerial', 'synthcity', 'vaihingen']
    with pytest.raises(ValueError, match=r"unknown dataset 'camvd': one of \['camvid', 'cityscapes'"):
        get_dataset('camvd')
    for name in ('cityscapes', 'camvid', 'vaihingen', 'folder'):
        with pytest.raises(ValueError, match=rf"dataset='{name}' is real data: give data_dir"):
            get_dataset(name).load()
    with pytest.raises(FileNotFoundError, match='nowhere'):
        get_dataset('camvid').load(tmp_path/'nowhere')
    with pytest.raises(ValueError, match="scale='huge'"):
        get_dataset('synthcity').load(scale='huge')
    with pytest.raises(ValueError, match='crop_size=-3'):
        get_dataset('camvid').load(camvid_tree(tmp_path/'cv'), crop_size=-3)
    d = get_dataset('camvid').load(tmp_path/'cv')
    with pytest.raises(ValueError, match='crop_size'):
        d.labelled(0.5, 0)
    # a new dataset is a registration
    e = DatasetEntry('camvid-copy', 'val', 'test', DATASETS['camvid'].build, table=CAMVID, layout='SegNet layout')
    try:
        register_dataset(e)
        assert get_dataset('camvid-copy').load(tmp_path/'cv', crop_size=4).name == 'camvid-copy'
    finally: DATASETS.pop('camvid-copy')


def test_cityscapes_selects_on_train_holdout(tmp_path):
    root = tmp_path/'cs'
    for split, city, n in (('train', 'aachen', 12), ('val', 'frankfurt', 2)):
        for k in range(n):
            st = f'{city}_{k:06d}_000019'
            png(root/'leftImg8bit'/split/city/f'{st}_leftImg8bit.png', np.zeros((4, 6, 3), np.uint8))
            png(root/'gtFine'/split/city/f'{st}_gtFine_labelIds.png', np.full((4, 6), 7, np.uint8))
    d = get_dataset('cityscapes').load(root, crop_size=4, split_root=tmp_path/'s')
    assert (d.selected, d.reported) == ('train-holdout', 'val')
    assert d.val.ids == ['aachen_000000_000019', 'aachen_000010_000019'] and len(d.pool) == 10 and len(d.test) == 2
    assert len(d.unlabelled(None)) == 12
    with pytest.raises(ValueError, match='class_table'):
        get_dataset('cityscapes').load(root, class_table=tmp_path/'x.json')


def test_vaihingen_tiles_of_different_sizes_evaluate(tmp_path):
    "Real Vaihingen tiles differ in size: evaluation goes one whole tile at a time through the sliding window."
    import sys; sys.path.insert(0, str(Path(__file__).parent))
    from test_data import vh_tree
    from sslseg.evaluation import evaluate
    from sslseg.train import eval_loader
    root = vh_tree(tmp_path/'vh', tiles=tuple(range(1, 18)), h=24, w=30)
    vh_tree(root, tiles=tuple(range(18, 34)), h=28, w=36)
    d = get_dataset('vaihingen').load(root, crop_size=16, split_root=tmp_path/'s')
    shapes = {tuple(s[i][0].shape[-2:]) for s in (d.val, d.test) for i in range(len(s))}
    assert d.eval_batch_size == 1 and shapes == {(24, 30), (28, 36)}
    model = torch.nn.Conv2d(3, d.classes.num_classes, 1)
    with pytest.raises(RuntimeError):  # what batches of 8 whole tiles did: they cannot be stacked
        for s in (d.val, d.test): evaluate(model, eval_loader(s, 8), d.classes.num_classes, predict_fn=d.predict_fn)
    for split in (d.val, d.test):
        r = evaluate(model, eval_loader(split, d.eval_batch_size), d.classes.num_classes, predict_fn=d.predict_fn)
        assert 0 <= r['miou'] <= 1
