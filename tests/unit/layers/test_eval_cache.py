"""Eval caches (resized filters, pos_embed, reordered MLP weights): bounded, measured,
released by train()."""
import timm
import torch

from gfnet_dense import GFNetH
from gfnet_dense.layers import GlobalFilter, eval_cache_bytes, release_eval_caches
from gfnet_dense.models.gfnet import GFBlock
from gfnet_dense.ops import config

TINY_H = dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1], layer_scale_init=0.1)


def _cache(module):
    return module.__dict__.get('_eval_cache', {})


def _all_caches(model):
    return [_cache(m) for m in model.modules() if _cache(m)]


def test_filter_cache_is_bounded_at_eight_sizes_and_measured():
    layer = GlobalFilter(4, (6, 6)).eval()
    sizes = [(7 + i, 9) for i in range(10)]
    with torch.no_grad():
        for size in sizes:
            layer(torch.randn(1, *size, 4))
    cache = _cache(layer)
    assert len(cache) == 8
    assert [key[0] for key in cache] == sizes[2:]  # the least recently used went first
    # complex64 (C, H, W//2+1) filters, 8 bytes per element
    assert eval_cache_bytes(layer) == sum(8 * 4 * h * (w // 2 + 1) for h, w in sizes[2:])


def test_stored_size_and_parameters_cost_nothing():
    layer = GlobalFilter(4, (6, 6)).eval()
    with torch.no_grad():
        layer(torch.randn(1, 6, 6, 4))  # no resize at the stored grid
    assert eval_cache_bytes(layer) == 0


def test_mlp_weight_cache_counts_only_new_tensors():
    block = GFBlock(8, (6, 6), layer_scale_init=0.1).eval()
    with torch.no_grad():
        block(torch.randn(1, 9, 7, 8))
    filter_bytes = 8 * 8 * 9 * 4
    assert eval_cache_bytes(block.filter) == filter_bytes
    extra = eval_cache_bytes(block) - filter_bytes
    if _cache(block.mlp):  # oneDNN: prepacked fc1, fc2 weights and the scaled fc2 bias
        assert extra >= 4 * (2 * 8 * 32 + 8)
    else:
        assert extra == 0


def test_train_releases_every_cache_of_the_backbone():
    model = GFNetH(arch=TINY_H, pretrain_img_size=64).eval()
    with torch.no_grad():
        for size in ((96, 80), (50, 130)):
            model(torch.randn(1, 3, *size))
    assert eval_cache_bytes(model) > 0
    assert _cache(model)  # the resized pos_embed
    assert all(_cache(blk.filter) for stage in model.blocks for blk in stage)
    assert model.train() is model
    assert not _all_caches(model) and eval_cache_bytes(model) == 0
    # eval() keeps what inference cached
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 96, 80))
    model.eval()
    assert _all_caches(model)


def test_release_without_leaving_eval_and_timm_classifier_train():
    model = timm.create_model('gfnet_h_ti', img_size=64, num_classes=3,
                              embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1]).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 80, 72))
    assert _all_caches(model)
    release_eval_caches(model)
    assert not _all_caches(model) and not model.training
    with torch.no_grad():
        model(torch.randn(1, 3, 80, 72))
    model.train()
    assert not _all_caches(model)


def test_standalone_block_train_releases_its_caches():
    block = GFBlock(8, (6, 6), layer_scale_init=0.1).eval()
    with torch.no_grad():
        block(torch.randn(1, 9, 7, 8))
    assert _cache(block.filter)
    assert _cache(block.mlp) or not config.ONEDNN_LINEAR_AVAILABLE  # prepacked weights
    block.train()
    assert not _cache(block.filter) and not _cache(block.mlp)
