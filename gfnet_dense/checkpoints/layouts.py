"""Reading GFNet checkpoints of every layout we meet and fitting them to a model.

Layouts: the released ImageNet files (``{'model': state_dict}``), plain state
dicts, our pretraining checkpoints (``{'model': ..., 'optimizer': ...}``) and
MMEngine checkpoints of a segmentor / detector (``{'state_dict': {'backbone.*'}}``),
and the public AFFNet's cvnets layout (classifier or DeepLabv3 encoder; renamed
by ``gfnet_dense.checkpoints.cvnets``).
Position embeddings and global filters are resized to the model; anything else
that does not fit raises ``CheckpointMismatchError`` listing every offending key.
"""
from typing import Dict, Iterable, Optional

import torch
from torch import nn

from ..layers import GlobalFilter, infer_grid_size, resize_filter, resize_pos_embed
from .checks import CheckpointMismatchError, check_finite, show_key, show_keys
from .cvnets import cvnets_to_ours, is_cvnets_layout

# stored grids (filters, pos_embed) larger than this many times the model's, per side,
# are refused: resizing costs grow with the stored size (a 1024 checkpoint at 224 is 4.6x)
MAX_GRID_RATIO = 8


def unwrap_state_dict(checkpoint, strip_backbone: bool = True) -> Dict[str, torch.Tensor]:
    """The model weights inside any supported checkpoint layout, ``module.`` removed and,
    with ``strip_backbone``, only the ``backbone.`` weights of a whole segmentor / detector."""
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(
            f'expected a checkpoint dict, got {type(checkpoint).__name__}')
    for key in ('model', 'state_dict'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    not_str = [k for k in checkpoint if not isinstance(k, str)]
    if not_str:
        raise CheckpointMismatchError(
            f'checkpoint state dict has {len(not_str)} keys that are not strings '
            f'({show_keys(not_str)}); a state dict maps parameter names to tensors')
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in checkpoint.items()}
    if strip_backbone and any(k.startswith('backbone.') for k in state):  # a segmentor / detector
        state = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        keys = show_keys(sorted(map(str, checkpoint)))
        raise CheckpointMismatchError(
            f'checkpoint holds no state dict of tensors (top-level keys: {keys})')
    not_dense = [k for k, v in state.items() if v.layout != torch.strided]
    if not_dense:
        raise CheckpointMismatchError(f'checkpoint has non-dense (e.g. sparse) tensors: '
                                      f'{show_keys(not_dense)}; save dense weights')
    return state


def select_prefix(checkpoint, prefix: str, name: str) -> Dict[str, torch.Tensor]:
    """The weights under ``prefix`` (e.g. ``'backbone.'``) with it removed, as MMEngine's
    ``PretrainedInit(prefix=...)`` takes them."""
    state = unwrap_state_dict(checkpoint, strip_backbone=False)
    picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not picked:
        starts = sorted({k.split('.')[0] + '.' for k in state})
        raise CheckpointMismatchError(
            f"no weights under prefix '{show_key(prefix)}' in '{show_key(name)}' "
            f'(its keys start like {show_keys(starts)})')
    return picked


def _pos_grid(num_tokens: int, name: str) -> tuple:
    side = int(round(num_tokens ** 0.5))
    if side * side != num_tokens:
        raise CheckpointMismatchError(
            f'{name} has {num_tokens} tokens, not a square grid; cannot infer its size')
    return side, side


def adapt_state_dict(state: dict, model: nn.Module,
                     rename: Optional[Dict[str, str]] = None,
                     drop_prefixes: Iterable[str] = ()) -> Dict[str, torch.Tensor]:
    """Fit a checkpoint's weights to ``model``: unwrap, convert the cvnets layout,
    rename, drop, resize.

    ``pos_embed`` and every ``*.complex_weight`` whose channels match are resized
    to the model's shapes (filters with the mode of the model's filter layer).
    Other shape differences are left for ``load_into`` to report.
    """
    state = unwrap_state_dict(state)
    if is_cvnets_layout(state):
        state = cvnets_to_ours(state)
    check_finite(state)
    rename = rename or {}
    drop_prefixes = tuple(drop_prefixes)
    out = {}
    for key, value in state.items():
        for old, new in rename.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        if drop_prefixes and key.startswith(drop_prefixes):
            continue
        out[key] = value
    targets = model.state_dict()
    for key, value in out.items():
        target = targets.get(key)
        if target is None or target.shape == value.shape:
            continue
        if key == 'pos_embed' and value.dim() == 3 and value.shape[-1] == target.shape[-1]:
            grid = _pos_grid(value.shape[1], key)
            check_grid_ratio(key, grid, model.pos_grid)
            out[key] = resize_pos_embed(value, grid, model.pos_grid)
        elif key.endswith('complex_weight') and value.dim() == 4 \
                and value.shape[2:] == target.shape[2:]:
            layer: GlobalFilter = model.get_submodule(key.rsplit('.', 1)[0])
            grid = infer_grid_size(value.shape)
            check_grid_ratio(key, grid, layer.grid_size)
            out[key] = resize_filter(value.float(), layer.grid_size, layer.resize_mode,
                                     grid).to(value.dtype).contiguous()
    return out


def check_grid_ratio(key: str, stored, model_grid) -> None:
    """Refuse a stored grid more than ``MAX_GRID_RATIO`` times the model's per side."""
    if any(s > MAX_GRID_RATIO * max(m, 1) for s, m in zip(stored, model_grid)):
        raise CheckpointMismatchError(
            f'{show_key(key)} is stored for a {stored[0]}x{stored[1]} grid, more than '
            f'{MAX_GRID_RATIO}x the model\'s {model_grid[0]}x{model_grid[1]} per side; '
            'build the model at a size nearer the checkpoint\'s (e.g. pretrain_img_size / '
            'img_size), or convert the file with tools/convert_checkpoint.py --img-size')
