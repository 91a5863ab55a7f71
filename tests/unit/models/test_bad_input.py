"""Bad input fails early with a message that says what was wrong."""
import pytest
import torch

from gfnet_dense import GFNet, GFNetH
import timm

TINY_H = dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1])


def test_wrong_channel_count():
    with pytest.raises(ValueError, match='3 input channels but got 4'):
        GFNetH(arch=TINY_H)(torch.randn(1, 4, 32, 32))
    with pytest.raises(ValueError, match='1 input channels but got 3'):
        timm.create_model('gfnet_ti', in_chans=1)(torch.randn(1, 3, 32, 32))


def test_two_dimensional_tensor():
    with pytest.raises(ValueError, match=r'4-D \(N, C, H, W\).*2-D'):
        GFNetH(arch=TINY_H)(torch.randn(3, 32))


def test_unbatched_image():
    with pytest.raises(ValueError, match=r'x\[None\]'):
        GFNet(arch=dict(embed_dim=8, depth=1))(torch.randn(3, 32, 32))


def test_empty_batch():
    with pytest.raises(ValueError, match='empty batch'):
        GFNetH(arch=TINY_H)(torch.randn(0, 3, 32, 32))


def test_unknown_arch():
    with pytest.raises(ValueError, match=r"unknown arch 'xl'.*'b', 's', 'ti'"):
        GFNetH(arch='xl')
    with pytest.raises(ValueError, match="missing \\['depths'\\]"):
        GFNetH(arch=dict(embed_dims=[8, 16, 24, 32]))
    with pytest.raises(ValueError, match='unknown arch'):
        GFNet(arch='h_s')


def test_unknown_resize_mode():
    with pytest.raises(ValueError, match="unknown filter_resize mode 'area'"):
        GFNetH(arch=TINY_H, filter_resize='area')


def test_bad_out_indices_and_frozen_stages():
    with pytest.raises(ValueError, match='out of range'):
        GFNetH(arch=TINY_H, out_indices=(4,))
    with pytest.raises(ValueError, match='frozen_stages'):
        GFNetH(arch=TINY_H, frozen_stages=7)


def test_pretrained_and_init_cfg_together():
    with pytest.raises(ValueError, match='not both'):
        GFNetH(arch=TINY_H, pretrained='a.pth', init_cfg=dict(type='Pretrained', checkpoint='a'))
