"""Any timm model as an OpenMMLab backbone, for comparisons under identical heads.

``type='TimmFeatures', model_name='resnet18'`` (or ``'convnext_nano'``, ...) wraps
``timm.create_model(model_name, features_only=True)`` with the freezing,
``norm_eval`` and checked ``init_cfg`` loading of our own backbones.
"""
from typing import Dict, List, Optional, Sequence, Set, Tuple, Union

import timm
import torch
from mmengine.model import BaseModule
from mmengine.registry import MODELS

from ..checkpoints import (CheckpointMismatchError, check_finite, load_into, mismatch_report,
                           read_checkpoint, select_prefix, unwrap_state_dict)
from .backbones import MMBackboneMixin, normalize_indices


@MODELS.register_module()
class TimmFeatures(MMBackboneMixin, BaseModule):
    """The feature maps of a timm model, NCHW, e.g. ResNet-18 / ConvNeXt beside GFNet-H.

    Args:
        model_name: any timm model that supports ``features_only``.
        out_indices: entries of the model's ``feature_info`` to return (negative
            ones count from the end). The default, the last four, gives the maps at
            strides 4/8/16/32 of ResNets (whose first entry is the stride-2 stem)
            and ConvNeXts alike.
        frozen_stages: ``-1`` none, ``0`` the stem, ``k`` the stem and the stages
            of the first ``k`` outputs. The stem is every top-level module of the
            features model before the module of output 0 (``feature_info``'s
            ``module``); stage ``i`` runs from after output ``i-1``'s module up to
            output ``i``'s (ResNet: stem ``conv1``-``maxpool``, stages ``layer1``-
            ``layer4``; ConvNeXt: ``stem``, ``stages.0``-``3``). Needs a model whose
            features wrapper is timm's ``FeatureListNet`` (most CNNs).
        norm_eval: BatchNorm layers in eval mode during training.
        drop_path_rate: stochastic depth, passed to timm unless None.
        in_channels: image channels.
        init_cfg: ``dict(type='Pretrained', checkpoint=path, prefix=None)`` loads a
            timm classifier of the same ``model_name`` (``tools/pretrain.py``, a
            plain state dict, ``.safetensors``) or this backbone's weights from an
            MMEngine checkpoint; anything that does not fit exactly fails.
        pretrained: deprecated alias of ``init_cfg=dict(type='Pretrained', ...)``.

    Attributes: ``out_channels`` and ``out_strides``, one int per output.

    Shape: ``(N, in_channels, H, W) -> tuple of (N, out_channels[i], ~H/s_i, ~W/s_i)``
    with ``s_i = out_strides[i]`` (each model rounds odd sizes its own way).
    """

    def __init__(self, model_name: str, out_indices: Union[int, Sequence[int]] = (-4, -3, -2, -1),
                 frozen_stages: int = -1, norm_eval: bool = False,
                 drop_path_rate: Optional[float] = None, in_channels: int = 3,
                 init_cfg: Optional[dict] = None, pretrained: Optional[str] = None):
        super().__init__()
        self.model_name = model_name
        self._timm_kwargs = dict(in_chans=in_channels)
        if drop_path_rate is not None:
            self._timm_kwargs['drop_path_rate'] = drop_path_rate
        given = (out_indices,) if isinstance(out_indices, int) else tuple(out_indices)
        try:
            self.body = self._create(given)
        except (IndexError, AssertionError):  # timm's out-of-range index errors
            count = len(timm.create_model(model_name, pretrained=False,
                                          **self._timm_kwargs).feature_info)
            normalize_indices(given, count, f'{model_name} feature level')
            raise  # in range after all: another problem
        count = len(self.body.feature_info)
        indices = normalize_indices(given, count, f'{model_name} feature level')
        if tuple(i % count for i in given) != indices:  # unsorted or repeated: outputs in order
            self.body = self._create(indices)
        info = self.body.feature_info
        self.out_channels: List[int] = list(info.channels(list(indices)))
        self.out_strides: List[int] = list(info.reduction(list(indices)))
        self._nhwc = getattr(self.body, 'output_fmt', 'NCHW') == 'NHWC'  # e.g. Swin
        if frozen_stages >= 0 and not hasattr(self.body, 'return_layers'):
            raise ValueError(f'frozen_stages needs a timm FeatureListNet; {model_name} gives '
                             f'{type(self.body).__name__}, whose stages are not defined here')
        if not -1 <= frozen_stages <= len(indices):
            raise ValueError(f'frozen_stages must be in [-1, {len(indices)}], got {frozen_stages}')
        self._setup(indices, None, frozen_stages, norm_eval, init_cfg, pretrained)

    def _create(self, out_indices) -> torch.nn.Module:
        return timm.create_model(self.model_name, features_only=True, out_indices=out_indices,
                                 pretrained=False, **self._timm_kwargs)

    def _frozen_modules(self):
        """The stem and the stages of the first ``frozen_stages`` outputs."""
        if self.frozen_stages < 0:
            return []
        children = list(self.body.named_children())
        ends = [i for i, (name, _) in enumerate(children) if name in self.body.return_layers]
        last = ends[self.frozen_stages - 1] if self.frozen_stages else ends[0] - 1
        return [module for _, module in children[:last + 1]]

    def forward(self, x: torch.Tensor) -> tuple:
        """``(N, C, H, W) -> tuple of (N, out_channels[i], H_i, W_i)``."""
        outs = self.body(x)
        outs = list(outs.values()) if isinstance(outs, dict) else list(outs)
        return tuple(o.permute(0, 3, 1, 2) if self._nhwc else o for o in outs)

    # ------------------------------------------------------------------ checkpoints
    def _classifier_keys(self) -> Tuple[Dict[str, str], Set[str]]:
        """``({classifier key: own key}, dropped keys)`` from a fresh full ``model_name``:
        dropped are the keys of modules this backbone does not contain (head, final
        norm, stages after the last output)."""
        full = timm.create_model(self.model_name, pretrained=False, **self._timm_kwargs)
        own = {k[len('body.'):]: k for k in self.state_dict()}
        mapping = {}
        for key in full.state_dict():
            # FeatureListNet flattens top-level Sequentials (stem.0 -> stem_0);
            # FeatureGetterNet keeps the whole model under ``model.``
            for name in (key, key.replace('.', '_', 1), 'model.' + key):
                if name in own:
                    mapping[key] = own[name]
                    break
        if sorted(mapping.values()) != sorted(own.values()):
            unmatched = sorted(set(own.values()) - set(mapping.values()))
            raise CheckpointMismatchError(
                f'cannot match the classifier weights of {self.model_name} to its features '
                f'model ({type(self.body).__name__}); unmatched: {unmatched[:10]}')
        return mapping, set(full.state_dict()) - set(mapping)

    def load_pretrained(self, checkpoint: str, prefix: Optional[str] = None,
                        map_location='cpu', **unsupported) -> None:
        """Load a classifier of ``model_name`` (its head, final norm and unused stages
        dropped) or, e.g. with ``prefix='backbone.'``, this backbone's own weights;
        strictly, raising ``CheckpointMismatchError`` with every misfit key."""
        if unsupported:
            raise ValueError(f'init_cfg of type Pretrained got unsupported keys '
                             f'{sorted(unsupported)}; it takes checkpoint, prefix, map_location')
        state = read_checkpoint(checkpoint, map_location)
        state = select_prefix(state, prefix, checkpoint) if prefix else unwrap_state_dict(state)
        check_finite(state)
        own = self.state_dict()
        if any(k in own for k in state):  # this backbone's own layout (MMEngine checkpoint)
            load_into(self, state)
            return
        mapping, dropped = self._classifier_keys()
        state = {k: v for k, v in state.items() if k not in dropped}
        report = mismatch_report({k: own[v] for k, v in mapping.items()}, state,
                                 what=f'timm {self.model_name!r} up to feature level '
                                      f'{self.out_indices[-1]}')
        if report:
            raise CheckpointMismatchError(f'{checkpoint!r}: {report}')
        load_into(self, {mapping[k]: v for k, v in state.items()})
