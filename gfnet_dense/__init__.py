"""gfnet-dense: GFNet / GFNet-H backbones for dense prediction.

``import gfnet_dense`` registers the timm classifiers (``gfnet_h_s`` ...) and the
MMEngine backbones (``type='GFNetH'`` / ``'GFNet'``) and the label-check hook.
"""
from . import safe_loading  # noqa: F401  (registers SafeCheckpointLoadingHook)
from .datasets import SegLabelCheckHook, make_ade20k_demo
from .models import *  # noqa: F401,F403
from .models import __all__ as _models_all

__version__ = '0.1.0'
__all__ = list(_models_all) + ['SegLabelCheckHook', 'make_ade20k_demo']
