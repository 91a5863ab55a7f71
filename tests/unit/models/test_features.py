"""timm's feature API on the GFNet, GFNet-H and AFFNet classifiers.

``features_only=True`` for every registered name, ``forward_intermediates``,
``prune_intermediate_layers``, gradient checkpointing, ``group_matcher`` (layer-wise
learning-rate decay) and ``no_weight_decay``. Full-size variants are built once
each (the default feature levels); everything else runs on small settings.
"""
import math

import pytest
import timm
import torch
from timm.models._features import FeatureGetterNet, FeatureInfo
from timm.models._manipulate import group_with_matcher
from timm.optim import create_optimizer_v2

import gfnet_dense  # noqa: F401  (registers the models)
from gfnet_dense.models.gfnet import default_feature_blocks

SIZE = (96, 160)  # non-square: 6 x 10 tokens at stride 16
GFNET_NAMES = ['gfnet_ti', 'gfnet_xs', 'gfnet_s', 'gfnet_b']
GFNET_H_NAMES = ['gfnet_h_ti', 'gfnet_h_s', 'gfnet_h_b']
AFFNET_NAMES = ['affnet_et', 'affnet_t', 'affnet_s']
NAMES = GFNET_NAMES + GFNET_H_NAMES + AFFNET_NAMES
# small settings of each family (real widths, fewer blocks) and a feature subset
SMALL = {'gfnet': dict(depth=4), 'gfnet_h': dict(depths=(1, 1, 2, 1)), 'affnet': {}}
SUBSET = {'gfnet': (1, 3), 'gfnet_h': (1, 2), 'affnet': (0, 2, 3)}


def family(name):
    return name.rsplit('_', 1)[0]


def small(name, **kwargs):
    """The classifier ``name`` with the small settings of its family, in eval."""
    torch.manual_seed(0)
    return timm.create_model(name, num_classes=5, **SMALL[family(name)], **kwargs).eval()


def image(batch=1, size=SIZE):
    return torch.randn(batch, 3, *size)


def last_block(model, name):
    """The module run last: a block, or AFFNet's last stage."""
    return {'gfnet': lambda: model.blocks[-1], 'gfnet_h': lambda: model.blocks[-1][-1],
            'affnet': lambda: model.stages[-1]}[family(name)]()


def assert_maps_fit(maps, feature_info, size=SIZE):
    """NCHW maps with the channels and reductions ``feature_info`` names."""
    assert len(maps) == len(feature_info.out_indices)
    for m, chs, red in zip(maps, feature_info.channels(), feature_info.reduction()):
        assert m.shape == (m.shape[0], chs, math.ceil(size[0] / red), math.ceil(size[1] / red))


@pytest.mark.parametrize('name', NAMES)
def test_features_only_default_levels(name):
    model = timm.create_model(name, features_only=True).eval()
    expected = {'gfnet': lambda: default_feature_blocks(model.model.depth),
                'gfnet_h': lambda: (0, 1, 2, 3), 'affnet': lambda: (0, 1, 2, 3, 4)}[family(name)]()
    assert tuple(model.feature_info.out_indices) == expected
    assert not [k for k in model.state_dict() if k.startswith(('head.', 'norm.', 'conv_1x1_exp.'))]
    with torch.no_grad():
        maps = model(image())
    assert_maps_fit(maps, model.feature_info)


@pytest.mark.parametrize('name', NAMES)
def test_features_only_subset_matches_the_classifier(name):
    indices = SUBSET[family(name)]
    features = timm.create_model(name, features_only=True, out_indices=indices,
                                 **SMALL[family(name)]).eval()
    assert tuple(features.feature_info.out_indices) == indices
    classifier = small(name)
    features.model.load_state_dict(classifier.state_dict(), strict=False)
    x = image(2)
    with torch.no_grad():
        maps = features(x)
        expected = classifier.forward_intermediates(x, list(indices), intermediates_only=True)
    assert_maps_fit(maps, features.feature_info)
    for a, b in zip(maps, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # pruned: nothing after the last level taken
    levels = features.model.stages if family(name) == 'affnet' else features.model.blocks
    assert len(levels) == indices[-1] + 1


@pytest.mark.parametrize('name', ['gfnet_ti', 'gfnet_h_ti', 'affnet_et'])
def test_forward_intermediates_options(name):
    model = small(name)
    x = image(2)
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x), rtol=0, atol=0)
        assert_maps_fit(maps, FeatureInfo(model.feature_info, tuple(range(len(maps)))))
        # an int takes the last n; NHWC is the same maps channels last
        last_two = model.forward_intermediates(x, 2, output_fmt='NHWC', intermediates_only=True)
        for a, b in zip(last_two, maps[-2:]):
            torch.testing.assert_close(a, b.permute(0, 2, 3, 1), rtol=0, atol=0)
        # stop_early gives the same maps without running later levels
        calls = []
        last_block(model, name).register_forward_pre_hook(lambda *args: calls.append(1))
        early = model.forward_intermediates(x, [0, 1], stop_early=True, intermediates_only=True)
        assert not calls
        for a, b in zip(early, maps[:2]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        model.forward_intermediates(x, [0], intermediates_only=True)
        assert calls
        normed = model.forward_intermediates(x, norm=True, intermediates_only=True)
    if family(name) == 'gfnet':  # the final LayerNorm fits every block
        for a, b in zip(normed, maps):
            torch.testing.assert_close(a, model.norm(b.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
    else:  # it fits the last level only
        for a, b in zip(normed[:-1], maps[:-1]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        head_in = final if family(name) == 'affnet' else final.permute(0, 3, 1, 2)
        torch.testing.assert_close(normed[-1], head_in)
    with pytest.raises(ValueError, match='output_fmt'):
        model.forward_intermediates(x, output_fmt='NLC')


@pytest.mark.parametrize('name', ['gfnet_h_ti', 'affnet_et'])
def test_feature_getter_with_norm_keeps_the_final_norm(name):
    model = small(name)
    x = image()
    with torch.no_grad():
        expected = model.forward_intermediates(x, [2, 3], norm=True, intermediates_only=True)
        getter = FeatureGetterNet(model, out_indices=(2, 3), norm=True)
        maps = getter(x)
    last_width = {'gfnet_h': 512, 'affnet': 104}[family(name)]  # AFFNet's stage 3 is not last
    assert getter.feature_info.channels()[-1] == last_width
    assert_maps_fit(maps, getter.feature_info)
    for a, b in zip(maps, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    if family(name) == 'gfnet_h':
        assert isinstance(model.norm, torch.nn.LayerNorm)
    with torch.no_grad():  # AFFNet with its last stage: conv_1x1_exp's channels
        getter = FeatureGetterNet(small('affnet_et'), out_indices=(4,), norm=True)
        assert getter.feature_info.channels() == [576] and getter(x)[0].shape[1] == 576


@pytest.mark.parametrize('name', ['gfnet_ti', 'gfnet_h_ti', 'affnet_et'])
def test_prune_intermediate_layers(name):
    model = small(name)
    x = image()
    with torch.no_grad():
        before = model.forward_intermediates(x, [0, 1], intermediates_only=True)
        kept = model.prune_intermediate_layers([0, -len(model.feature_info) + 1])
        after = model.forward_intermediates(x, kept, intermediates_only=True)
        pooled = model(x)
    assert kept == [0, 1]
    levels = model.stages if family(name) == 'affnet' else model.blocks
    assert len(levels) == 2
    assert isinstance(model.head, torch.nn.Identity) and model.num_classes == 0
    # the final norm fits the (gone) last level of GFNet-H and AFFNet only
    assert isinstance(model.conv_1x1_exp if family(name) == 'affnet' else model.norm,
                      torch.nn.LayerNorm if family(name) == 'gfnet' else torch.nn.Identity)
    assert model.num_features == model.feature_info[1]['num_chs']
    assert pooled.shape == (1, model.num_features)
    for a, b in zip(after, before):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize('name', ['gfnet_ti', 'gfnet_h_ti', 'affnet_et'])
def test_grad_checkpointing_gives_the_same_gradients(name):
    model = small(name, drop_path_rate=0.0).train()
    x = image(2, (64, 96))
    target = torch.randn(2, 5)

    def gradients():
        model.zero_grad()
        (model(x) * target).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = gradients()
    calls = []
    block = {'gfnet': lambda: model.blocks[0], 'gfnet_h': lambda: model.blocks[0][0],
             'affnet': lambda: model.stages[2].blocks[0]}[family(name)]()
    block.register_forward_pre_hook(lambda *args: calls.append(1))
    model.set_grad_checkpointing(True)
    checkpointed = gradients()
    assert len(calls) == 2  # forward, and again in backward
    model.set_grad_checkpointing(False)
    assert plain.keys() == checkpointed.keys()
    for k in plain:
        torch.testing.assert_close(checkpointed[k], plain[k], msg=k)


def _layer_ids(model, coarse):
    return group_with_matcher(model.named_parameters(), model.group_matcher(coarse), reverse=True)


@pytest.mark.parametrize('coarse', [False, True])
@pytest.mark.parametrize('name', ['gfnet_ti', 'gfnet_h_ti', 'affnet_et'])
def test_group_matcher_covers_every_parameter_once(name, coarse):
    model = small(name)
    names = [n for n, _ in model.named_parameters()]
    ids = _layer_ids(model, coarse)
    assert sorted(ids) == sorted(names)
    groups = group_with_matcher(model.named_parameters(), model.group_matcher(coarse))
    assert sorted(n for members in groups.values() for n in members) == sorted(names)
    # only the head is left unmatched (timm puts it in a last group of its own)
    last = max(ids.values())
    assert {n for n, i in ids.items() if i == last} == {'head.weight', 'head.bias'}
    assert sorted(set(ids.values())) == list(range(last + 1))


def test_group_matcher_block_ids():
    ids = _layer_ids(small('gfnet_ti'), False)
    assert ids['pos_embed'] == ids['patch_embed.proj.weight'] == 0
    assert [ids[f'blocks.{i}.mlp.fc1.weight'] for i in range(4)] == [1, 2, 3, 4]
    assert ids['norm.weight'] == 4

    ids = _layer_ids(small('gfnet_h_ti'), False)  # depths (1, 1, 2, 1)
    assert ids['pos_embed'] == ids['patch_embed.0.proj.weight'] == 0
    assert ids['patch_embed.2.proj.weight'] == ids['blocks.2.0.norm1.weight'] == 3
    assert ids['blocks.2.1.gamma'] == 4 and ids['blocks.3.0.gamma'] == 5
    assert ids['norm.weight'] == 5
    coarse = _layer_ids(small('gfnet_h_ti'), True)
    assert coarse['patch_embed.2.proj.weight'] == coarse['blocks.2.1.gamma'] == 3

    ids = _layer_ids(small('affnet_et'), False)  # MobileNetV2 1 + 3, AFF 2 + 4 + 3 blocks
    assert ids['stem.0.weight'] == 0 and ids['stages.1.2.block.0.0.weight'] == 4
    assert ids['stages.2.downsample.block.0.0.weight'] == ids['stages.2.blocks.0.norm1.weight'] == 5
    assert ids['stages.2.fusion.0.weight'] == ids['stages.2.blocks.1.filter.w1'] == 6
    assert ids['conv_1x1_exp.0.weight'] == ids['stages.4.blocks.2.filter.w1'] == 13


@pytest.mark.parametrize('name', ['gfnet_ti', 'gfnet_h_ti', 'affnet_et'])
def test_layer_decay_optimizer_and_no_weight_decay(name):
    model = small(name)
    optimizer = create_optimizer_v2(model, 'adamw', lr=1e-3, weight_decay=0.05, layer_decay=0.75)
    grouped = [p for group in optimizer.param_groups for p in group['params']]
    assert len(grouped) == len(list(model.parameters()))
    assert {id(p) for p in grouped} == {id(p) for p in model.parameters()}
    if family(name) != 'affnet':
        assert model.no_weight_decay() == {'pos_embed'}
        group, = [g for g in optimizer.param_groups
                  if any(p is model.pos_embed for p in g['params'])]
        assert group['weight_decay'] == 0.0
