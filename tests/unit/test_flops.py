"""FLOPs counted as the GFNet paper counts them (FFTs included) match its numbers at 224."""
import math

import pytest
import timm
import torch

from gfnet_dense.flops import count_flops

PAPER_GFLOPS = {'gfnet_ti': 1.3, 'gfnet_xs': 2.9, 'gfnet_s': 4.5, 'gfnet_b': 7.9,
                'gfnet_h_ti': 2.1, 'gfnet_h_s': 4.6, 'gfnet_h_b': 8.6}


@pytest.mark.parametrize('name', sorted(PAPER_GFLOPS))
def test_flops_match_paper_within_3_percent(name):
    gflops = count_flops(timm.create_model(name), torch.randn(1, 3, 224, 224)) / 1e9
    assert abs(gflops - PAPER_GFLOPS[name]) / PAPER_GFLOPS[name] < 0.03, gflops


def test_fft_is_counted_as_n_c_log_n():
    from gfnet_dense.layers import GlobalFilter
    layer = GlobalFilter(5, (8, 16))
    # rfft2 + irfft2 over 8x16 = 128 points, 5 channels, batch 2
    expected = 2 * (2 * 5 * 128 * math.ceil(math.log2(128)))
    assert count_flops(layer, torch.randn(2, 8, 16, 5)) == expected


def test_fast_path_counts_like_the_reference(monkeypatch):
    # several MLP row chunks and FFT channel groups must add up to the plain formulation
    from gfnet_dense import GFNetH
    from gfnet_dense.ops import config, fast_path
    monkeypatch.setattr(config, 'MLP_CHUNK_ELEMENTS', 1 << 12)
    monkeypatch.setattr(config, 'FFT_GROUP_ELEMENTS', 1 << 8)
    monkeypatch.setattr(config, 'FFT_GROUP_ALIGN', 1)
    model = GFNetH(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1]), pretrain_img_size=64)
    x = torch.randn(1, 3, 96, 80)
    fast = count_flops(model, x)
    with fast_path(False):
        assert fast == count_flops(model, x)
