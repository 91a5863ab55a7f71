"""GFNet-H / GFNet backbones: shapes at any size, registries, freezing, gradients."""
import pytest
import torch
from mmengine.registry import MODELS

import gfnet_dense  # noqa: F401  (registers the backbones)
from gfnet_dense import GFNet, GFNetH

TINY_H = dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 2, 1], layer_scale_init=1e-2)
TINY_ISO = dict(embed_dim=16, depth=4)


@pytest.mark.parametrize('size,expected', [
    ((224, 224), [(56, 56), (28, 28), (14, 14), (7, 7)]),
    ((333, 517), [(84, 130), (42, 65), (21, 33), (11, 17)]),
    ((64, 97), [(16, 25), (8, 13), (4, 7), (2, 4)]),
    ((31, 33), [(8, 9), (4, 5), (2, 3), (1, 2)]),
])
def test_gfnet_h_strides_and_sizes(size, expected):
    model = GFNetH(arch=TINY_H).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, *size))
    assert [tuple(o.shape[2:]) for o in outs] == expected
    assert [o.shape[1] for o in outs] == TINY_H['embed_dims']
    assert all(o.is_contiguous(memory_format=torch.channels_last) for o in outs)


@pytest.mark.parametrize('arch,dims', [('ti', [64, 128, 256, 512]), ('s', [96, 192, 384, 768])])
def test_named_variants_build_and_run(arch, dims):
    model = GFNetH(arch=arch, out_indices=(1, 3)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 96, 160))
    assert [o.shape[1] for o in outs] == [dims[1], dims[3]]
    assert [tuple(o.shape[2:]) for o in outs] == [(12, 20), (3, 5)]


def test_isotropic_gfnet_outputs_stride_16_maps():
    model = GFNet(arch=TINY_ISO, out_indices=(1, 3)).eval()
    outs = model(torch.randn(2, 3, 100, 70))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 7, 5)] * 2
    assert GFNet(arch='ti').out_indices == (2, 5, 8, 11)
    assert GFNet(arch='s').out_indices == (3, 8, 13, 18)


@pytest.mark.parametrize('scope', ['mmseg', 'mmdet'])
def test_registered_under_downstream_scopes(scope):
    pytest.importorskip(scope)  # the CI environment installs both
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    for cfg in (dict(type='GFNetH', arch=TINY_H), dict(type='GFNet', arch=TINY_ISO)):
        model = registry.build(cfg)
        assert type(model).__name__ == cfg['type']
    assert MODELS.get('GFNetH') is GFNetH


@pytest.mark.parametrize('filter_resize', ['bicubic', 'spatial'])
def test_every_parameter_gets_a_gradient_at_non_native_size(filter_resize):
    model = GFNetH(arch=TINY_H, pretrain_img_size=64, filter_resize=filter_resize,
                   drop_path_rate=0.1).train()
    sum(o.mean() for o in model(torch.randn(2, 3, 90, 75))).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not no_grad


def test_isotropic_every_parameter_gets_a_gradient():
    model = GFNet(arch=TINY_ISO, pretrain_img_size=64).train()
    sum(o.mean() for o in model(torch.randn(1, 3, 80, 112))).backward()
    assert all(p.grad is not None and p.grad.any() for p in model.parameters())


def test_unused_stages_are_frozen_for_ddp():
    model = GFNetH(arch=TINY_H, out_indices=(0, 1)).train()
    sum(o.mean() for o in model(torch.randn(1, 3, 64, 64))).backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(p.grad is not None for n, p in model.named_parameters()
                             if n in trainable)
    assert not any(n.startswith(('blocks.2', 'blocks.3', 'patch_embed.2')) for n in trainable)


def test_with_cp_matches_plain_forward_and_backward():
    plain = GFNetH(arch=TINY_H, pretrain_img_size=64).train()
    cp = GFNetH(arch=TINY_H, pretrain_img_size=64, with_cp=True).train()
    cp.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 72, 64)
    for model in (plain, cp):
        sum(o.square().mean() for o in model(x)).backward()
    for (name, a), b in zip(plain.named_parameters(), cp.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name, atol=1e-6, rtol=1e-4)


def test_frozen_stages_and_train_returns_self():
    model = GFNetH(arch=TINY_H, frozen_stages=2)
    assert model.train() is model
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    expected_prefixes = ('pos_embed', 'patch_embed.0', 'patch_embed.1', 'blocks.0', 'blocks.1',
                         'norm0', 'norm1')
    assert frozen == {n for n, _ in model.named_parameters() if n.startswith(expected_prefixes)}
    assert not model.blocks[1].training and model.blocks[2].training
    assert model.eval() is model and not model.blocks[2].training

    iso = GFNet(arch=TINY_ISO, frozen_stages=1).train()
    assert not iso.patch_embed.training and not iso.blocks[0].training and iso.blocks[1].training
    assert not iso.pos_embed.requires_grad


def test_norm_eval_puts_batchnorm_in_eval():
    model = GFNetH(arch=TINY_H, norm_eval=True)
    model.extra_bn = torch.nn.BatchNorm2d(4)
    model.train()
    assert not model.extra_bn.training and model.blocks[0].training


def test_eval_forward_is_deterministic_and_cached():
    model = GFNetH(arch=TINY_H, pretrain_img_size=64).eval()
    x = torch.randn(1, 3, 96, 80)
    with torch.no_grad():
        a = model(x)
        b = model(x)
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v)
    assert all('_eval_cache' in blk.filter.__dict__ for stage in model.blocks for blk in stage)


def test_sliding_and_nonsquare_sizes_agree_with_training_path():
    """Eval (cached) and train-mode (recomputed) filters give the same features."""
    model = GFNetH(arch=TINY_H, pretrain_img_size=64, drop_path_rate=0.0)
    x = torch.randn(1, 3, 50, 130)
    with torch.no_grad():
        cached = model.eval()(x)
    train_mode = model.train()(x)
    for u, v in zip(cached, train_mode):
        torch.testing.assert_close(u, v.detach())
