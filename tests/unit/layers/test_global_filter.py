"""Identities of the resolution-adaptive global filter."""
import pytest
import torch

from gfnet_dense.layers import (FILTER_RESIZE_MODES, GlobalFilter, resize_filter,
                                resize_filter_spatial)
from gfnet_dense.layers import global_filter as gf


def circular_conv(x, kernel):
    """Direct circular convolution of x (B, H, W, C) with kernel (H, W, C), per channel."""
    out = torch.zeros_like(x)
    H, W = kernel.shape[:2]
    for i in range(H):
        for j in range(W):
            out += kernel[i, j] * torch.roll(x, shifts=(i, j), dims=(1, 2))
    return out


def kernel_of(layer, size):
    weight = layer.filter_for(size)
    return torch.fft.irfft2(weight, s=size, dim=(0, 1))


@pytest.mark.parametrize('size', [(6, 6), (5, 7), (7, 4)])
def test_global_filter_is_circular_convolution(size):
    layer = GlobalFilter(3, size)
    x = torch.randn(2, *size, 3)
    expected = circular_conv(x.double(), kernel_of(layer, size).double())
    torch.testing.assert_close(layer(x).double(), expected, atol=1e-5, rtol=1e-4)


def test_native_size_uses_stored_filter_without_resize(monkeypatch):
    layer = GlobalFilter(4, (8, 8))

    def fail(*args, **kwargs):
        raise AssertionError('resize called at the native size')

    monkeypatch.setattr(gf, 'resize_filter', fail)
    weight = layer.filter_for((8, 8))
    assert weight.shape == (8, 5, 4)
    assert torch.equal(torch.view_as_real(weight), layer.complex_weight)
    layer(torch.randn(1, 8, 8, 4))


@pytest.mark.parametrize('mode', FILTER_RESIZE_MODES)
def test_resize_to_same_grid_is_identity_of_the_layer(mode):
    layer = GlobalFilter(2, (6, 7), resize_mode=mode)
    resized = resize_filter(layer.complex_weight.detach(), (6, 7), mode, (6, 7))
    x = torch.randn(1, 6, 7, 2)
    same = torch.fft.irfft2(torch.fft.rfft2(x, dim=(1, 2), norm='ortho')
                            * torch.view_as_complex(resized.contiguous()),
                            s=(6, 7), dim=(1, 2), norm='ortho')
    torch.testing.assert_close(same, layer(x), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize('src,dst', [((6, 6), (10, 13)), ((7, 5), (9, 8)), ((4, 4), (4, 9))])
def test_spatial_mode_keeps_kernel_when_grid_grows(src, dst):
    layer = GlobalFilter(3, src, resize_mode='spatial')
    small = kernel_of(layer, src)
    big = kernel_of(layer, dst)
    seen = torch.zeros(dst, dtype=torch.bool)
    for di in range(-(src[0] // 2), (src[0] - 1) // 2 + 1):
        for dj in range(-(src[1] // 2), (src[1] - 1) // 2 + 1):
            torch.testing.assert_close(big[di % dst[0], dj % dst[1]],
                                       small[di % src[0], dj % src[1]], atol=1e-6, rtol=1e-5)
            seen[di % dst[0], dj % dst[1]] = True
    assert big[~seen].abs().max() < 1e-6, 'new offsets must hold a zero kernel'
    # and the layer at the larger size is the circular convolution with that kernel
    x = torch.randn(1, *dst, 3)
    torch.testing.assert_close(layer(x).double(), circular_conv(x.double(), big.double()),
                               atol=1e-5, rtol=1e-4)


def test_spatial_mode_crops_kernel_when_grid_shrinks():
    weight = torch.randn(8, 5, 2, 2)
    small = torch.fft.irfft2(torch.view_as_complex(
        resize_filter_spatial(weight, (5, 5), (8, 8)).contiguous()), s=(5, 5), dim=(0, 1))
    big = torch.fft.irfft2(torch.view_as_complex(weight), s=(8, 8), dim=(0, 1))
    for di in range(-2, 3):
        for dj in range(-2, 3):
            torch.testing.assert_close(small[di % 5, dj % 5], big[di % 8, dj % 8],
                                       atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('mode', ['bicubic', 'bilinear'])
def test_frequency_mode_matches_interpolated_filter(mode):
    layer = GlobalFilter(2, (4, 4), resize_mode=mode)
    weight = layer.filter_for((8, 12))
    assert weight.shape == (8, 7, 2)
    corners = torch.view_as_real(weight)[[0, -1]][:, [0, -1]]
    stored = layer.complex_weight.detach()[[0, -1]][:, [0, -1]]
    torch.testing.assert_close(corners, stored)  # align_corners=True keeps the corners


@pytest.mark.parametrize('mode', FILTER_RESIZE_MODES)
def test_gradient_reaches_stored_filter_at_other_sizes(mode):
    layer = GlobalFilter(3, (6, 6), resize_mode=mode).train()
    layer(torch.randn(2, 9, 11, 3)).square().sum().backward()
    grad = layer.complex_weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_eval_caches_resized_filter_and_invalidates_on_update(monkeypatch):
    layer = GlobalFilter(3, (6, 6)).eval()
    calls = []
    real = gf.resize_filter
    monkeypatch.setattr(gf, 'resize_filter', lambda *a, **k: calls.append(1) or real(*a, **k))
    x = torch.randn(1, 10, 10, 3)
    with torch.no_grad():
        first = layer(x)
        second = layer(x)
        assert len(calls) == 1
        torch.testing.assert_close(first, second)
        layer(torch.randn(1, 12, 7, 3))
        assert len(calls) == 2
        layer(x)
        assert len(calls) == 2  # both sizes stay cached
        layer.load_state_dict({'complex_weight': torch.randn_like(layer.complex_weight)})
        third = layer(x)
        assert len(calls) == 3
        assert not torch.allclose(first, third)
    layer.train()
    layer(x)
    layer(x)
    assert len(calls) == 5  # training recomputes for autograd


def test_fft_runs_in_float32_under_autocast():
    layer = GlobalFilter(4, (6, 6))
    x = torch.randn(2, 6, 6, 4)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = layer(x.bfloat16())
    assert out.dtype == torch.bfloat16
    reference = layer(x.bfloat16().float())
    torch.testing.assert_close(out.float(), reference, atol=2e-2, rtol=2e-2)


def test_half_precision_parameters_work():
    layer = GlobalFilter(4, (6, 6)).bfloat16()
    out = layer(torch.randn(1, 9, 7, 4, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and out.shape == (1, 9, 7, 4)


def test_unknown_resize_mode_is_rejected():
    with pytest.raises(ValueError, match='unknown filter_resize mode .*nearest.*bicubic'):
        GlobalFilter(4, (6, 6), resize_mode='nearest')
