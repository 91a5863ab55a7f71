"""Memoising values derived from parameters alone while a model runs in eval.

A resized filter, a resized position embedding or prepacked MLP weights depend
on the input size and the parameters, not on the image: in eval without
autograd they are computed once per size and kept on the module that owns the
parameters. Training (or autograd) recomputes them each call, so gradients
reach the stored parameters.

Threads may run one model in eval at once: every read or change of a cache
holds one lock of this module, for the dictionary operations only (never while
a value is computed, so threads compute in parallel; two threads missing the
same key both compute it and the first stored value is kept and returned).
The lock is a module global, not an attribute, so modules copy and pickle as before.
"""
import threading
from collections import OrderedDict
from typing import Callable, Hashable, Iterable, Optional

import torch
from torch import nn

from ..ops.config import capturing_graph

_CACHE_SIZE = 8  # enough for multi-scale test-time augmentation without thrashing
_CACHE_ATTR = '_eval_cache'
# guards every eval cache's OrderedDict: lookups, insertions and evictions of
# concurrent threads would otherwise interleave (a hit evicted between its
# lookup and its move_to_end, two evictions of one entry)
_LOCK = threading.Lock()


def parameter_key(param: torch.Tensor) -> tuple:
    """What identifies a parameter's current value: storage, version, dtype, device."""
    return param.data_ptr(), param._version, param.dtype, param.device


def _caching(module: nn.Module) -> bool:
    """Eval mode, no autograd, not being compiled or recorded as a graph (tracing sees
    no storage; a cached tensor would become a constant of the graph)."""
    return not (module.training or torch.is_grad_enabled() or torch.compiler.is_compiling()
                or capturing_graph())


def memoize_in_eval(module: nn.Module, key: Hashable, compute: Callable[[], object]) -> object:
    """``compute()``, memoised on ``module`` while it is in eval mode without autograd.

    In training (or with autograd on) the value is recomputed each call so that
    gradients reach the stored parameter. ``key`` must change whenever the
    result would (size, device, parameter version). At most ``_CACHE_SIZE``
    entries per module, least recently used dropped first; ``module.train()``
    drops them all, and copies and pickles leave them behind, when ``module``
    derives from ``EvalCacheMixin``.
    """
    if not _caching(module):
        return compute()
    with _LOCK:
        cache = module.__dict__.get(_CACHE_ATTR)
        if cache is not None and key in cache:
            cache.move_to_end(key)
            return cache[key]
    value = compute()  # outside the lock: other threads run meanwhile
    with _LOCK:
        cache = module.__dict__.setdefault(_CACHE_ATTR, OrderedDict())
        value = cache.setdefault(key, value)  # another thread's, had it stored one first
        cache.move_to_end(key)
        if len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    return value


class EvalCacheMixin:
    """For modules that memoise with ``memoize_in_eval``: ``train(True)`` drops the cache.

    ``nn.Module.train`` calls ``train`` on every child, so a model's ``train()``
    empties the caches of all its modules.
    """

    def memoize(self, key: tuple, compute: Callable[[], object],
                params: Iterable[Optional[torch.Tensor]] = ()) -> object:
        """``memoize_in_eval`` on this module under ``key`` and the current value
        (``parameter_key``) of each of ``params`` (``None`` entries skipped)."""
        if not _caching(self):
            return compute()
        key = tuple(key) + tuple(parameter_key(p) for p in params if p is not None)
        return memoize_in_eval(self, key, compute)

    def train(self, mode: bool = True):
        if mode:
            self.__dict__.pop(_CACHE_ATTR, None)
        return super().train(mode)

    def __getstate__(self) -> dict:
        """Copies and pickles leave the cache behind: its keys name this module's
        parameter storages, and oneDNN's prepacked weights cannot be copied."""
        state = super().__getstate__()
        state.pop(_CACHE_ATTR, None)
        return state


def release_eval_caches(model: nn.Module) -> None:
    """Drop the eval caches of ``model`` and all its submodules (e.g. after multi-scale
    testing, without leaving eval mode)."""
    for module in model.modules():
        module.__dict__.pop(_CACHE_ATTR, None)


def _tensors(value) -> list:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def _storage_key(t: torch.Tensor) -> tuple:
    if t.layout != torch.strided:  # e.g. oneDNN's opaque tensors: no shared storage
        return ('opaque', id(t))
    return t.device, t.untyped_storage().data_ptr()


def _nbytes(t: torch.Tensor) -> int:
    if t.layout != torch.strided:
        return t.numel() * t.element_size()
    return t.untyped_storage().nbytes()


def eval_cache_bytes(model: nn.Module) -> int:
    """Bytes held by the eval caches of ``model``'s modules.

    Counts each storage once; cached values that are parameters or buffers of
    ``model`` (a filter at its stored size, an unpacked bias) cost nothing extra.
    """
    owned = {_storage_key(t) for t in list(model.parameters()) + list(model.buffers())}
    seen, total = set(owned), 0
    for module in model.modules():
        with _LOCK:  # a snapshot: other threads may be filling the cache
            values = list(module.__dict__.get(_CACHE_ATTR, {}).values())
        for value in values:
            for t in _tensors(value):
                key = _storage_key(t)
                if key not in seen:
                    seen.add(key)
                    total += _nbytes(t)
    return total
