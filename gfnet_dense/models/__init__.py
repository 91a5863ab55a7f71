"""GFNet, GFNet-H and AFFNet; importing registers the timm classifiers.

The MMEngine backbones ``GFNet``, ``GFNetH`` and ``AFFNet`` (``backbones``) need
mmengine, so they are imported, and registered with MMEngine, on first use of
their names here (``import gfnet_dense`` does that); the rest imports without it.
"""
from ..layers import (FILTER_RESIZE_MODES, AdaptiveFrequencyFilter, GlobalFilter, resize_filter,
                      spectral_filter)
from .affnet import AFFNET_ARCHS, AFFNetClassifier, AFFNetTrunk
from .checkpoint import CheckpointMismatchError, adapt_state_dict, load_into, read_checkpoint
from .gfnet import (GFNET_ARCHS, GFNET_H_ARCHS, GFBlock, GFNetClassifier, GFNetHClassifier,
                    HierarchicalGFNet, IsotropicGFNet, checkpoint_filter_fn)

_MMENGINE_BACKBONES = ('AFFNet', 'GFNet', 'GFNetH')


def __getattr__(name: str):
    if name in _MMENGINE_BACKBONES:
        from . import backbones
        return getattr(backbones, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = [
    'AFFNET_ARCHS', 'AFFNet', 'AFFNetClassifier', 'AFFNetTrunk', 'AdaptiveFrequencyFilter',
    'CheckpointMismatchError', 'FILTER_RESIZE_MODES', 'GFBlock', 'GFNet', 'GFNetClassifier',
    'GFNetH', 'GFNetHClassifier', 'GFNET_ARCHS', 'GFNET_H_ARCHS', 'GlobalFilter',
    'HierarchicalGFNet', 'IsotropicGFNet', 'adapt_state_dict', 'checkpoint_filter_fn',
    'load_into', 'read_checkpoint', 'resize_filter', 'spectral_filter',
]
