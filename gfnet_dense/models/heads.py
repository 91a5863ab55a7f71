"""What the timm classifiers share: global pooling, the linear head, timm's ``device`` /
``dtype`` factory arguments, their building and their checkpoint filter."""
import contextlib
import functools
from typing import Callable, ContextManager, Iterable, Optional

import torch
from timm.layers import get_channel_dim, get_spatial_dim
from timm.models import build_model_with_cfg
from torch import nn

from ..checkpoints import adapt_state_dict

#: ``global_pool`` values: average over the grid, or none (the features' own layout)
GLOBAL_POOLS = ('avg', '')


def on_device(device) -> ContextManager:
    """``with on_device(device):`` creates every tensor on ``device`` (``None``: as usual)."""
    return torch.device(device) if device is not None else contextlib.nullcontext()


def factory_kwargs(init: Callable) -> Callable:
    """Adds timm's factory arguments to a model's ``__init__``: ``device`` (every
    parameter and buffer is created there, e.g. ``'meta'``) and ``dtype`` (they are
    cast to it once built)."""
    @functools.wraps(init)
    def wrapped(self, *args, device=None, dtype: Optional[torch.dtype] = None, **kwargs):
        with on_device(device):
            init(self, *args, **kwargs)
        if dtype is not None:
            self.to(dtype)
    return wrapped


class ClassifierMixin:
    """timm's classifier API on a trunk whose ``forward_features`` puts out maps in
    ``output_fmt`` (``'NHWC'`` tokens or ``'NCHW'``): global average pooling
    (``global_pool='avg'``; ``''``: none) and a linear head (``num_classes=0``: none;
    on unpooled features it acts at every position, giving logit maps)."""

    output_fmt: str
    num_classes: int
    num_features: int
    global_pool: str = 'avg'

    def _build_head(self, num_features: int, num_classes: int, global_pool: str) -> None:
        self.num_features = self.head_hidden_size = num_features
        self.reset_classifier(num_classes, global_pool)

    def _init_head(self, head: nn.Linear) -> None:
        """Initialise a new head (default: ``nn.Linear``'s own initialisation)."""

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        """A new head for ``num_classes`` (0: none) on the model's device and dtype, in
        its mode; ``global_pool`` as in the constructor (``None``: keep the current)."""
        if global_pool is not None:
            if global_pool not in GLOBAL_POOLS:
                raise ValueError(f'global_pool must be one of {GLOBAL_POOLS}, got {global_pool!r}')
            self.global_pool = global_pool
        self.num_classes = num_classes
        if not num_classes:
            self.head = nn.Identity()
            return
        like = next(self.parameters())
        self.head = nn.Linear(self.num_features, num_classes, device=like.device,
                              dtype=like.dtype).train(self.training)
        self._init_head(self.head)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool:
            x = x.mean(dim=get_spatial_dim(self.output_fmt))
        if pre_logits:
            return x
        if self.global_pool:
            return self.head(x)
        channels = get_channel_dim(self.output_fmt)  # logit maps in the features' layout
        return self.head(x.movedim(channels, -1)).movedim(-1, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def checkpoint_filter_fn(state_dict: dict, model: nn.Module) -> dict:
    """Any checkpoint of ours, a released GFNet one or a public (cvnets-layout) AFFNet
    file, adapted to ``model`` (filters and ``pos_embed`` resized)."""
    return adapt_state_dict(state_dict, model)


def build_classifier(cls: type, variant: str, pretrained: bool, feature_levels: Iterable[int],
                     **kwargs) -> nn.Module:
    """timm's ``build_model_with_cfg`` with ``checkpoint_filter_fn``; ``features_only=True``
    gives the maps of ``out_indices`` (default ``feature_levels``) through
    ``forward_intermediates`` (timm's ``FeatureGetterNet``)."""
    return build_model_with_cfg(cls, variant, pretrained,
                                pretrained_filter_fn=checkpoint_filter_fn,
                                feature_cfg=dict(out_indices=tuple(feature_levels),
                                                 feature_cls='getter'),
                                **kwargs)
