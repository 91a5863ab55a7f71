"""GFNet-family and AFFNet models; importing registers them with timm and MMEngine."""
from .affnet import AFFNET_ARCHS, AdaptiveFrequencyFilter, AFFNetClassifier
from .backbones import AFFNet, GFNet, GFNetH
from .checkpoint import CheckpointMismatchError, adapt_state_dict, load_into, read_checkpoint
from .gfnet import (GFNET_ARCHS, GFNET_H_ARCHS, GFBlock, GFNetClassifier, GFNetHClassifier,
                    HierarchicalGFNet, IsotropicGFNet, checkpoint_filter_fn)
from .global_filter import FILTER_RESIZE_MODES, GlobalFilter, resize_filter, spectral_filter

__all__ = [
    'AFFNET_ARCHS', 'AFFNet', 'AFFNetClassifier', 'AdaptiveFrequencyFilter',
    'CheckpointMismatchError', 'FILTER_RESIZE_MODES', 'GFBlock', 'GFNet', 'GFNetClassifier',
    'GFNetH', 'GFNetHClassifier', 'GFNET_ARCHS', 'GFNET_H_ARCHS', 'GlobalFilter',
    'HierarchicalGFNet', 'IsotropicGFNet', 'adapt_state_dict', 'checkpoint_filter_fn',
    'load_into', 'read_checkpoint', 'resize_filter', 'spectral_filter',
]
