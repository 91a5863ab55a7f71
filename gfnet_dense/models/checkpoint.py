"""Reading GFNet checkpoints of every layout we meet and fitting them to a model.

Layouts: the released ImageNet files (``{'model': state_dict}``), plain state
dicts, our pretraining checkpoints (``{'model': ..., 'optimizer': ...}``) and
MMEngine checkpoints of a segmentor / detector (``{'state_dict': {'backbone.*'}}``).
Position embeddings and global filters are resized to the model; anything else
that does not fit raises ``CheckpointMismatchError`` listing every offending key.
"""
import os
import pickle
import warnings
from typing import Dict, Iterable, Optional

import torch
from torch import nn

from .gfnet import resize_pos_embed
from .global_filter import GlobalFilter, infer_grid_size, resize_filter


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model (wrong variant, corrupt or foreign file)."""


# What MMEngine checkpoints (message hub: HistoryBuffer with numpy arrays and bound
# statistics methods) and the public GFNet training script (argparse namespace)
# pickle beside the tensors.
TRUSTED_GLOBALS = frozenset({
    'argparse.Namespace', 'builtins.getattr', 'collections.OrderedDict',
    'mmengine.logging.history_buffer.HistoryBuffer',
})


def _trusted(name: str) -> bool:
    return name in TRUSTED_GLOBALS or name.startswith(('numpy.', 'torch.'))


def torch_load(path: str, map_location='cpu'):
    """``torch.load`` with a deliberate policy for torch >= 2.6's weights-only default.

    Tensors-only files load with ``weights_only=True``. A file that pickles
    more is inspected first: when every Python global in it is one that MMEngine
    or the GFNet training script writes, it is loaded in full (it is a training
    checkpoint the user chose); anything else is refused with the list of names.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        foreign = sorted(n for n in names if not _trusted(n))
        if foreign:
            raise CheckpointMismatchError(
                f'{path!r} pickles Python objects that are neither tensors nor MMEngine '
                f'training state: {foreign}; refusing to unpickle it. If you trust the file, '
                'load it with torch.load(..., weights_only=False) and save its state dict.')
        return torch.load(path, map_location=map_location, weights_only=False)


def read_checkpoint(path: str) -> dict:
    """Load a checkpoint file onto the CPU, with clear errors for missing or unreadable files."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint file {path!r} does not exist')
    try:
        return torch_load(path)
    except CheckpointMismatchError:
        raise
    except Exception as err:  # truncated zip, random bytes, ...
        raise CheckpointMismatchError(
            f'could not read checkpoint {path!r} ({type(err).__name__}: {err}); '
            'the file is corrupt, truncated or not a PyTorch checkpoint') from err


def unwrap_state_dict(checkpoint: dict) -> Dict[str, torch.Tensor]:
    """The model weights inside any supported checkpoint layout, prefixes removed."""
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(
            f'expected a checkpoint dict, got {type(checkpoint).__name__}')
    for key in ('model', 'state_dict'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in checkpoint.items()}
    if any(k.startswith('backbone.') for k in state):  # a whole segmentor / detector
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
    """Fit a checkpoint's weights to ``model``: unwrap, rename, drop, resize.

    ``pos_embed`` and every ``*.complex_weight`` whose channels match are resized
    to the model's shapes (filters with the mode of the model's filter layer).
    Other shape differences are left for ``load_into`` to report.
    """
    state = unwrap_state_dict(state)
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
