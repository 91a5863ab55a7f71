"""Reading GFNet checkpoints of every layout we meet and fitting them to a model.

Layouts: the released ImageNet files (``{'model': state_dict}``), plain state
dicts, our pretraining checkpoints (``{'model': ..., 'optimizer': ...}``) and
MMEngine checkpoints of a segmentor / detector (``{'state_dict': {'backbone.*'}}``),
and the public AFFNet's cvnets layout (classifier or DeepLabv3 encoder; renamed
by ``gfnet_dense.cvnets_layout``).
Position embeddings and global filters are resized to the model; anything else
that does not fit raises ``CheckpointMismatchError`` listing every offending key.
"""
import warnings
from typing import Dict, Iterable, Optional

import torch
from torch import nn

from .cvnets_layout import cvnets_to_ours, is_cvnets_layout
from .layers import GlobalFilter, infer_grid_size, resize_filter, resize_pos_embed
from .serialization import UnsafeCheckpointError, load_checkpoint


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model (wrong variant, corrupt or foreign file)."""


def read_checkpoint(path: str, map_location='cpu') -> dict:
    """Load a checkpoint file or ``http(s)://`` URL under the safe loading policy
    (``gfnet_dense.serialization``), with clear errors for missing, unreadable and
    unsafe files."""
    try:
        return load_checkpoint(path, map_location)
    except (UnsafeCheckpointError, OSError):  # unsafe, missing, a directory, no download
        raise
    except Exception as err:  # truncated zip, random bytes, ...
        raise CheckpointMismatchError(
            f'could not read checkpoint {path!r} ({type(err).__name__}: {err}); '
            'the file is corrupt, truncated or not a PyTorch / safetensors checkpoint') from err


def unwrap_state_dict(checkpoint: dict, strip_backbone: bool = True) -> Dict[str, torch.Tensor]:
    """The model weights inside any supported checkpoint layout, ``module.`` removed and,
    with ``strip_backbone``, only the ``backbone.`` weights of a whole segmentor / detector."""
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(
            f'expected a checkpoint dict, got {type(checkpoint).__name__}')
    for key in ('model', 'state_dict'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in checkpoint.items()}
    if strip_backbone and any(k.startswith('backbone.') for k in state):  # a segmentor / detector
        state = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointMismatchError('checkpoint holds no state dict of tensors '
                                      f'(top-level keys: {sorted(checkpoint)[:10]})')
    return state


def check_finite(state: Dict[str, torch.Tensor]) -> None:
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointMismatchError(
            f'checkpoint has NaN or Inf values in {len(bad)} tensors: {bad[:20]}; '
            'the file is corrupt or comes from a diverged run')


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
            out[key] = resize_pos_embed(value, _pos_grid(value.shape[1], key), model.pos_grid)
        elif key.endswith('complex_weight') and value.dim() == 4 \
                and value.shape[2:] == target.shape[2:]:
            layer: GlobalFilter = model.get_submodule(key.rsplit('.', 1)[0])
            out[key] = resize_filter(value.float(), layer.grid_size, layer.resize_mode,
                                     infer_grid_size(value.shape)).to(value.dtype).contiguous()
    return out


def mismatch_report(targets: Dict[str, torch.Tensor], state: Dict[str, torch.Tensor],
                    allowed_missing: Iterable[str] = (), what: str = 'the model') -> Optional[str]:
    """Every missing, unexpected and misfit key of ``state`` against ``targets`` (a
    model's state dict), as one message; ``None`` when ``state`` fits exactly."""
    allowed = set(allowed_missing)
    missing = sorted(k for k in targets if k not in state and k not in allowed)
    unexpected = sorted(k for k in state if k not in targets)
    misfit = sorted(f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(targets[k].shape)}'
                    for k, v in state.items() if k in targets and v.shape != targets[k].shape)
    if not (missing or unexpected or misfit):
        return None
    lines = [f'checkpoint does not fit {what}; is it for another variant or model?']
    for title, keys in (('shape mismatch', misfit), ('missing in checkpoint', missing),
                        ('unexpected in checkpoint', unexpected)):
        if keys:
            lines.append(f'  {title} ({len(keys)}):\n    ' + '\n    '.join(keys))
    return '\n'.join(lines)


def load_into(model: nn.Module, state: Dict[str, torch.Tensor],
              allowed_missing: Iterable[str] = ()) -> None:
    """Strict load, but with one error that lists every missing, unexpected and misfit key."""
    report = mismatch_report(model.state_dict(), state, allowed_missing, type(model).__name__)
    if report:
        raise CheckpointMismatchError(report)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model.load_state_dict(state, strict=False)
