"""Layer-wise learning-rate decay from the backbones' group_matcher."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from torch import nn

from gfnet_dense.mm import AFFNet, GFNetH
from gfnet_dense.mm.layer_decay import backbone_layer_ids


class Segmentor(nn.Module):
    """A backbone and a head, as MMSeg / MMDet models hold them."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(4, 2)


BACKBONES = {
    'gfnet_h': lambda: GFNetH(arch=dict(embed_dims=[8, 16, 24, 32], depths=[1, 2, 1, 1],
                                        layer_scale_init=1e-2)),
    'affnet': lambda: AFFNet(arch='et'),
}


def build(model, rate=0.5):
    cfg = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05),
               constructor='LayerDecayOptimWrapperConstructor',
               paramwise_cfg=dict(layer_decay_rate=rate,
                                  custom_keys={'norm': dict(decay_mult=0.)}))
    return build_optim_wrapper(model, cfg).optimizer


@pytest.mark.parametrize('name', sorted(BACKBONES))
def test_deeper_layers_get_larger_rates_and_heads_the_base_rate(name):
    model = Segmentor(BACKBONES[name]())
    optimizer = build(model)
    names = {id(p): n for n, p in model.named_parameters()}
    lr_of = {names[id(g['params'][0])]: g['lr'] for g in optimizer.param_groups}
    assert sorted(lr_of) == sorted(names.values())  # every parameter exactly once
    layers = backbone_layer_ids(model.backbone)
    num_layers = max(layers.values()) + 1
    assert num_layers > 4
    for param_name, layer in layers.items():
        assert lr_of[f'backbone.{param_name}'] == pytest.approx(0.5 ** (num_layers - 1 - layer))
    assert lr_of['head.weight'] == 1.0
    stem = min(layers.values())
    assert stem == 0 and lr_of[f'backbone.{min(layers, key=layers.get)}'] == \
        pytest.approx(0.5 ** (num_layers - 1))
    # the MMEngine options still apply: no weight decay on norms
    decay_of = {names[id(g['params'][0])]: g['weight_decay'] for g in optimizer.param_groups}
    assert all(decay_of[n] == 0 for n in decay_of if 'norm' in n)
    assert decay_of['head.weight'] == 0.05


def test_gfnet_h_blocks_are_ordered_stage_by_stage():
    layers = backbone_layer_ids(BACKBONES['gfnet_h']())
    assert layers['pos_embed'] == layers['patch_embed.0.proj.weight'] == 0
    order = [layers[f'blocks.{s}.{b}.mlp.fc1.weight'] for s, b in ((0, 0), (1, 0), (1, 1), (2, 0),
                                                                  (3, 0))]
    assert order == sorted(order) and len(set(order)) == 5


def test_rate_one_is_the_default_constructor_and_bad_rates_fail():
    model = Segmentor(BACKBONES['gfnet_h']())
    assert {g['lr'] for g in build(model, rate=1.0).param_groups} == {1.0}
    with pytest.raises(ValueError, match='layer_decay_rate'):
        build(model, rate=1.5)
