"""Exhaustive shape tests of every valid arch x backbone x norm on an odd input, and the weight hand-off checks (key match,
metadata, training checkpoints)."""
import re, time

import pytest
import torch
from torch import nn

from sslseg.models import (NORMS, build_backbone, build_model, save_checkpoint, load_checkpoint, load_pretrained,
                           valid_combinations, hub_checkpoint_path, IMAGENET_WEIGHTS)

H, W, NC = 97, 203, 3
COMBOS = [(a, b, n) for a, b in valid_combinations() for n in NORMS]


def test_all_combinations_listed():
    assert {(a, b) for a, b, _ in COMBOS} >= {
        ('fcn8s', 'resnet18'), ('fcn8s', 'resnet50'), ('fcn8s', 'resnet101'), ('fcn8s', 'drn50'),
        ('deeplabv3', 'resnet18'), ('deeplabv3', 'resnet50'), ('deeplabv3', 'resnet101'), ('deeplabv3', 'drn50'),
        ('unet', 'unet'), ('encdecunpool', 'vgg16_bn')}


@pytest.mark.parametrize('arch,backbone,norm', COMBOS, ids=['-'.join(c) for c in COMBOS])
def test_shapes(arch, backbone, norm):
    torch.manual_seed(0)
    m = build_model(arch, backbone, NC, norm=norm).eval()
    x, feats = torch.randn(1, 3, H, W), []
    m.backbone.register_forward_hook(lambda mod, inp, out: None if feats else feats.extend(out))
    with torch.no_grad():
        y = m(x)
        f = m.dense_features(x[..., :49, :67])  # a smaller odd crop keeps the test quick
    assert [t.shape[1] for t in feats] == list(m.backbone.channels)
    assert len(feats) == len(m.backbone.strides)
    assert y.shape == (1, NC, H, W) and y.dtype == torch.float32 and torch.isfinite(y).all()
    s, h, w = m.feature_stride, 49, 67
    assert f.shape[:2] == (1, m.feature_dim)
    assert f.shape[-2:] in {(-(-h // s), -(-w // s)), (h // s, w // s)}
    if norm == 'gn_ws': assert not any(isinstance(l, nn.BatchNorm2d) for l in m.modules())
    if backbone == 'drn50': assert m.backbone.strides == (4, 8, 8, 8)


def test_invalid_combination_lists_valid_ones():
    with pytest.raises(ValueError, match=r'encdecunpool\+vgg16_bn'): build_model('encdecunpool', 'resnet50', 3)
    with pytest.raises(ValueError, match=r'unet\+unet'): build_model('unet', 'resnet18', 3)
    with pytest.raises(ValueError, match='norm'): build_model('fcn8s', 'resnet18', 3, norm='ln')


def test_prefixed_checkpoint_loads_fully(tmp_path):
    bb = build_backbone('drn50', 'gn_ws')
    sd = {f'module.online.backbone.{k}': v for k, v in bb.state_dict().items()}
    sd['module.online.projector.weight'] = torch.zeros(4, 4)
    save_checkpoint(sd, tmp_path/'ck.pt', dict(method='byol', backbone='drn50', norm='gn_ws', steps=3))
    m = build_model('deeplabv3', 'drn50', 3, norm='gn_ws', init=tmp_path/'ck.pt')
    r = m.init_report
    assert r.fraction == 1.0 and r.prefix == 'module.online.backbone.' and not r.missing and not r.shape_mismatched
    assert r.unexpected == ['module.online.projector.weight'] and r.meta['steps'] == 3 and r.method == 'byol'
    assert torch.equal(m.backbone.layer3[0].conv2.weight, bb.layer3[0].conv2.weight)


def test_mismatched_checkpoint_refused(tmp_path):
    save_checkpoint(build_backbone('resnet18'), tmp_path/'r18.pt')  # no metadata: the key match refuses it
    with pytest.raises(ValueError, match=r'backbone tensors matched .*shape-mismatched'):
        build_model('fcn8s', 'resnet50', 3, init=tmp_path/'r18.pt')


@pytest.mark.parametrize('target,says', [(dict(norm='gn_ws'), "norm='bn', the target model has norm='gn_ws'"),
                                         (dict(backbone='resnet50'), "backbone='resnet18', the target model has backbone='resnet50'")])
def test_handoff_metadata_mismatch_refused(tmp_path, target, says):
    "A BN checkpoint used to load into a gn_ws model as '100% matched' (the affine tensors share names and shapes)."
    save_checkpoint(build_backbone('resnet18', 'bn'), tmp_path/'backbone.pt',
                    dict(method='byol', handoff='backbone', backbone='resnet18', norm='bn'))
    if 'norm' in target:  # what the key match alone says: everything matched
        assert load_pretrained(build_model('fcn8s', 'resnet18', 3, norm='gn_ws'), load_checkpoint(tmp_path/'backbone.pt')[0]).fraction == 1.0
    kw = dict(dict(backbone='resnet18', norm='bn'), **target)
    with pytest.raises(ValueError, match=re.escape(says)): build_model('fcn8s', num_classes=3, init=tmp_path/'backbone.pt', **kw)
    assert build_model('fcn8s', 'resnet18', 3, init=tmp_path/'backbone.pt').init_report.method == 'byol'


def test_training_checkpoint_refused(tmp_path):
    "The engine's checkpoint.pt as init: a clear pointer to backbone.pt, not torch's weights_only advice."
    from sslseg.train import TrainConfig, fit, SupervisedSeg, Blobs, tiny_net
    fit(SupervisedSeg(tiny_net()), Blobs(8), TrainConfig(steps=1, batch_size=4, device='cpu'), tmp_path/'run', progress=False)
    with pytest.raises(ValueError, match='this is a training checkpoint; use backbone.pt beside it'):
        build_model('fcn8s', 'resnet18', 3, init=tmp_path/'run'/'checkpoint.pt')


def test_checkpoint_roundtrip_is_plain(tmp_path):
    m = build_model('unet', 'unet', 2, width=4)
    save_checkpoint(m, tmp_path/'u.pt', dict(arch='unet', backbone='unet'))
    sd, meta = load_checkpoint(tmp_path/'u.pt')
    assert set(sd) == set(m.state_dict()) and meta['arch'] == 'unet' and 'sha' in meta['git']
    assert all(isinstance(v, torch.Tensor) for v in sd.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ['u.json', 'u.pt']


def test_imagenet_without_cache_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path/'empty'))
    for bb in ('resnet18', 'drn50', 'vgg16_bn'):
        arch = 'encdecunpool' if bb == 'vgg16_bn' else 'fcn8s'
        t0 = time.time()
        with pytest.raises(FileNotFoundError, match='No download is attempted') as e: build_model(arch, bb, 3, init='imagenet')
        assert time.time() - t0 < 10
        assert str(hub_checkpoint_path(IMAGENET_WEIGHTS[bb])) in str(e.value)
        assert str(tmp_path/'empty') in str(e.value)
