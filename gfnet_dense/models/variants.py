"""Variant settings: a name in a model's arch table or a user's dict."""
from typing import Dict, Sequence, Union


def resolve_arch(arch: Union[str, dict], table: Dict[str, dict], required: Sequence[str]) -> dict:
    """Variant settings from a name in ``table`` or a user dict with ``required`` keys."""
    if isinstance(arch, str):
        if arch.lower() not in table:
            raise ValueError(f'unknown arch {arch!r}; choose one of {sorted(table)} '
                             f'or pass a dict with keys {list(required)}')
        return dict(table[arch.lower()])
    if isinstance(arch, dict):
        missing = [k for k in required if k not in arch]
        if missing:
            raise ValueError(f'custom arch dict is missing {missing}; it needs {list(required)}')
        return dict(arch)
    raise TypeError(f'arch must be a name or a dict, got {type(arch).__name__}')
