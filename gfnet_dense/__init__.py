"""gfnet-dense: GFNet, GFNet-H and AFFNet for dense prediction.

``import gfnet_dense`` needs torch and timm only and registers the timm models
(``gfnet_h_s``, ``affnet_s``, ...). Where mmengine is installed it also imports
``gfnet_dense.mm``, which registers the MMEngine backbones (``type='GFNetH'``,
``'GFNet'``, ``'AFFNet'``), hooks and optimizer constructor; configs load it with
``custom_imports=dict(imports=['gfnet_dense'])``.
"""
from . import flop_handles  # noqa: F401  (FFT formulas for torch's FlopCounterMode)
from .checkpoints import CheckpointMismatchError, adapt_state_dict, load_into, read_checkpoint
from .layers import FILTER_RESIZE_MODES, GlobalFilter, resize_filter
from .models import *  # noqa: F401,F403
from .models import __all__ as _models_all

__version__ = '0.1.0'
__all__ = list(_models_all) + [
    'CheckpointMismatchError', 'FILTER_RESIZE_MODES', 'GlobalFilter', 'adapt_state_dict',
    'load_into', 'read_checkpoint', 'resize_filter']

try:
    import mmengine  # noqa: F401
except ImportError:  # the timm models alone
    pass
else:
    from .mm import *  # noqa: F401,F403
    from .mm import __all__ as _mm_all
    __all__ += list(_mm_all)
