"""Layer-wise learning-rate decay for MMEngine, from the backbone's ``group_matcher``.

ConvNeXt / BEiT-style ADE20K recipes give the backbone's deeper layers larger
learning rates: layer ``i`` of ``L`` gets ``lr * rate ** (L - 1 - i)``. The layer
ids come from the backbone's timm ``group_matcher(coarse=False)`` (the stem is
layer 0, then every block in order), so the same rule serves GFNet, GFNet-H and
AFFNet. Parameters outside the backbone (neck, heads) keep the base rate::

    optim_wrapper = dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        constructor='LayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.9, custom_keys={...}))

Every other ``paramwise_cfg`` option (``custom_keys``, ``norm_decay_mult``, ...)
works as in MMEngine's default constructor; the layer scale multiplies the
learning rate it sets.
"""
from typing import Dict, List

from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from timm.models import group_parameters
from torch import nn


def backbone_layer_ids(backbone: nn.Module) -> Dict[str, int]:
    """Parameter name (within ``backbone``) -> layer id, from its ``group_matcher``."""
    if not hasattr(backbone, 'group_matcher'):
        raise TypeError(f'{type(backbone).__name__} has no group_matcher(); layer-wise lr '
                        'decay needs the backbone to say which block each parameter is in')
    return group_parameters(backbone, backbone.group_matcher(coarse=False), reverse=True)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """MMEngine's default constructor plus ``paramwise_cfg['layer_decay_rate']``."""

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        self.layer_decay_rate = float(paramwise_cfg.pop('layer_decay_rate', 1.0))
        if not 0 < self.layer_decay_rate <= 1:
            raise ValueError(f'layer_decay_rate must be in (0, 1], got {self.layer_decay_rate}')
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '', **kwargs):
        super().add_params(params, module, prefix, **kwargs)
        if prefix:  # the default constructor recurses; scale once, at the top
            return
        model = module.module if is_model_wrapper(module) else module
        backbone = getattr(model, 'backbone', model)
        layer_of = backbone_layer_ids(backbone)
        num_layers = max(layer_of.values()) + 1
        backbone_params = {id(p): n for n, p in backbone.named_parameters()}
        for group in params:
            name = backbone_params.get(id(group['params'][0]))
            if name is None:  # neck and heads
                continue
            layer = layer_of[name]
            scale = self.layer_decay_rate ** (num_layers - 1 - layer)
            group['lr'] = group.get('lr', self.base_lr) * scale
            group['layer_id'] = layer
