"""Checks on loaded weights and training state, with errors a person can act on.

Keys in messages are shown escaped (a key is data from the file: it must not
drive the terminal) and lists are cut to the first ``MAX_KEYS_SHOWN`` plus a count.
"""
import math
import numbers
import pickle
import warnings
from typing import Dict, Iterable, List, Optional

import torch
from torch import nn

MAX_KEYS_SHOWN = 20
MAX_KEY_CHARS = 200


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model (wrong variant, corrupt or foreign file)."""


class UnsafeCheckpointError(pickle.UnpicklingError, ValueError):
    """A checkpoint asks to build something that is not data, or describes memory."""


class UnreadableCheckpointError(CheckpointMismatchError):
    """A file that is corrupt, truncated or not a checkpoint at all."""


def show_key(key) -> str:
    """``key`` escaped for a terminal (control characters as ``\\x1b``), cut when very long."""
    text = repr(str(key))[1:-1] if isinstance(key, str) else repr(key)
    return text if len(text) <= MAX_KEY_CHARS else text[:MAX_KEY_CHARS] + '...'


def show_keys(keys: Iterable, sep: str = ', ') -> str:
    """The first ``MAX_KEYS_SHOWN`` keys, escaped, and how many more there are."""
    keys = list(keys)
    shown = sep.join(show_key(k) for k in keys[:MAX_KEYS_SHOWN])
    more = len(keys) - MAX_KEYS_SHOWN
    return shown + (f'{sep}... and {more} more' if more > 0 else '')


def _has_values(tensor: torch.Tensor) -> bool:
    return tensor.is_floating_point() or tensor.is_complex()


def nonfinite_keys(state: Dict[str, torch.Tensor]) -> List[str]:
    """Keys of floating and complex tensors that hold NaN or Inf. Each stored region is
    checked once, so views sharing one storage cost no more than the storage."""
    seen = {}
    bad = []
    for key, value in state.items():
        if not isinstance(value, torch.Tensor) or not _has_values(value):
            continue
        region = (value.untyped_storage().data_ptr(), value.storage_offset(),
                  tuple(value.shape), value.stride(), value.dtype)
        if region not in seen:
            seen[region] = bool(torch.isfinite(value).all())
        if not seen[region]:
            bad.append(key)
    return bad


def check_finite(state: Dict[str, torch.Tensor], what: str = 'checkpoint') -> None:
    """Refuse weights with NaN or Inf (every floating and complex dtype)."""
    bad = nonfinite_keys(state)
    if bad:
        raise CheckpointMismatchError(
            f'{what} has NaN or Inf values in {len(bad)} tensors ({show_keys(bad)}); '
            'the file is corrupt or comes from a diverged run: use an earlier checkpoint')


# --------------------------------------------------------------------- training state
# values schedulers legitimately hold as infinite (ReduceLROnPlateau's best, mode_worse)
INFINITE_ALLOWED = frozenset({'best', 'mode_worse'})
# optimizer hyperparameters that reach the update and must be real numbers
_GROUP_NUMBERS = ('lr', 'initial_lr', 'weight_decay', 'momentum', 'dampening', 'eps',
                  'alpha', 'lr_decay', 'rho', 'max_lr', 'min_lr', 'lr_scale')


def _bad_number(value) -> Optional[str]:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, torch.Tensor)):
        return f'is {type(value).__name__}, not a number'
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_complex() or value.dtype == torch.bool:
            return f'is a tensor of shape {tuple(value.shape)} and dtype {value.dtype}'
        value = value.item()
    if not math.isfinite(value):
        return f'is {value}'
    return None


def training_state_problems(state, where: str) -> List[str]:
    """Non-finite values anywhere in an optimizer / scheduler / scaler state, and
    hyperparameters of the wrong type; ``INFINITE_ALLOWED`` keys may be infinite."""
    problems = []

    def visit(value, path, key):
        if len(problems) > MAX_KEYS_SHOWN:
            return
        if isinstance(value, dict):
            for k, v in value.items():
                visit(v, f'{path}.{show_key(k)}', k)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                visit(v, f'{path}[{i}]', key)
        elif isinstance(value, torch.Tensor):
            if _has_values(value) and key not in INFINITE_ALLOWED \
                    and not bool(torch.isfinite(value).all()):
                problems.append(f'{path} holds NaN or Inf')
        elif isinstance(value, float) and not math.isfinite(value) \
                and key not in INFINITE_ALLOWED:
            problems.append(f'{path} is {value}')

    visit(state, where, None)
    groups = state.get('param_groups') if isinstance(state, dict) else None
    for i, group in enumerate(groups if isinstance(groups, list) else []):
        if not isinstance(group, dict):
            problems.append(f'{where}.param_groups[{i}] is {type(group).__name__}, not a dict')
            continue
        for name in _GROUP_NUMBERS:
            if name in group:
                bad = _bad_number(group[name])
                if bad:
                    problems.append(f'{where}.param_groups[{i}].{name} {bad}')
        betas = group.get('betas')
        if betas is not None and (not isinstance(betas, (list, tuple)) or len(betas) != 2
                                  or any(_bad_number(b) for b in betas)):
            problems.append(f'{where}.param_groups[{i}].betas is {show_key(betas)}, '
                            'not two numbers')
    return problems


def check_training_state(parts: Dict[str, object], path: str) -> None:
    """Refuse a resumed optimizer / scheduler / scaler state that would reach the update
    with a non-finite or ill-typed value (``parts``: name -> state dict)."""
    problems = [p for name, part in parts.items() if part is not None
                for p in training_state_problems(part, name)]
    if problems:
        shown = '; '.join(problems[:MAX_KEYS_SHOWN])
        more = ' (and more)' if len(problems) > MAX_KEYS_SHOWN else ''
        raise CheckpointMismatchError(
            f'cannot resume from {path!r}: its training state is not usable: {shown}{more}. '
            'The run diverged or the file was edited: resume from an earlier checkpoint')


# --------------------------------------------------------------------------- fitting
def mismatch_report(targets: Dict[str, torch.Tensor], state: Dict[str, torch.Tensor],
                    allowed_missing: Iterable[str] = (), what: str = 'the model') -> Optional[str]:
    """Every missing, unexpected and misfit key of ``state`` against ``targets`` (a
    model's state dict), as one message; ``None`` when ``state`` fits exactly."""
    allowed = set(allowed_missing)
    # in the model's order (then the file's), so the first keys shown are the first layers
    missing = [k for k in targets if k not in state and k not in allowed]
    unexpected = [k for k in state if k not in targets]
    misfit = [f'{show_key(k)}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}'
              for k, v in targets.items() if k in state and state[k].shape != v.shape]
    if not (missing or unexpected or misfit):
        return None
    lines = [f'checkpoint does not fit {what}; is it for another variant or model?']
    for title, keys in (('shape mismatch', misfit), ('missing in checkpoint', missing),
                        ('unexpected in checkpoint', unexpected)):
        if keys:
            shown = keys if title == 'shape mismatch' else [show_key(k) for k in keys]
            lines.append(f'  {title} ({len(keys)}):\n    '
                         + '\n    '.join(shown[:MAX_KEYS_SHOWN])
                         + (f'\n    ... and {len(keys) - MAX_KEYS_SHOWN} more'
                            if len(keys) > MAX_KEYS_SHOWN else ''))
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
