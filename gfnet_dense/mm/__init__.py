"""The OpenMMLab side (the only code that imports mmengine / mmseg / mmdet).

Importing it registers, in MMEngine's root registries (so they build under the
``mmseg`` and ``mmdet`` scopes alike): the backbones ``GFNet``, ``GFNetH`` and
``AFFNet``, ``TimmFeatures`` (any timm model as a backbone), the hooks
``SafeCheckpointLoadingHook`` and ``SegLabelCheckHook`` and the optimizer
constructor ``LayerDecayOptimWrapperConstructor``; and it puts our checkpoint
loaders in MMEngine's scheme table for local files, URLs and model-zoo names
(``safe_loading.install_safe_loading``), so MMSeg's and MMDet's inference APIs
read checkpoints under ``gfnet_dense.checkpoints``' policy; and it adds the FFTs
to mmengine's FLOP table (``flop_handles.register_mmengine_handles``).
"""
from ..flop_handles import register_mmengine_handles
from .backbones import AFFNet, GFNet, GFNetH
from .label_check import SegLabelCheckHook, check_seg_labels
from .layer_decay import LayerDecayOptimWrapperConstructor
from .safe_loading import SafeCheckpointLoadingHook, install_safe_loading, safe_checkpoint_loading
from .timm_features import TimmFeatures

install_safe_loading()  # MMEngine's local / http(s) / model-zoo loaders: safe_loading.py
register_mmengine_handles()  # FFTs in mmengine's FLOP table (MMSeg's / MMDet's get_flops)

__all__ = ['AFFNet', 'GFNet', 'GFNetH', 'LayerDecayOptimWrapperConstructor',
           'SafeCheckpointLoadingHook', 'SegLabelCheckHook', 'TimmFeatures', 'check_seg_labels',
           'safe_checkpoint_loading']
