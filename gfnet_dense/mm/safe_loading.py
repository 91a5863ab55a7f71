"""The checkpoint policy of ``gfnet_dense.checkpoints`` for MMEngine's loaders.

MMEngine reads ``load_from``, ``resume`` and test checkpoints through
``CheckpointLoader``'s scheme table. ``safe_checkpoint_loading()`` swaps that
table for the duration of a ``with`` block: local files, ``http(s)://`` URLs and
MMEngine's ``open-mmlab://``, ``mmcls://`` and ``torchvision://`` names load
under the policy (downloads with a timeout, a size cap and checked contents);
every other scheme (``s3://``, ``pavi://``, ...) is refused; the previous table
is restored afterwards. Our tools wrap their run
in it. In MMSeg's / MMDet's own tools, add one line to the config::

    custom_hooks = [dict(type='SafeCheckpointLoadingHook')]

which applies it from ``before_run`` (before MMEngine loads anything) to
``after_run``.
"""
import contextlib

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..checkpoints import load_file, read_checkpoint
from ..checkpoints.download import HTTP_SCHEMES, MMENGINE_SCHEMES


def _load_local(filename, map_location=None):
    return load_file(filename, map_location)


def _load_remote(filename, map_location=None, *args, **kwargs):
    return read_checkpoint(filename, map_location)


def _refuse_scheme(prefix: str):
    def refuse(filename, map_location=None, *args, **kwargs):
        raise ValueError(f'checkpoint {filename!r}: the {prefix!r} scheme is not read under '
                         'the safe loading policy; download the file and give its local '
                         'path, an http(s) URL or an open-mmlab:// / torchvision:// name')
    return refuse


@contextlib.contextmanager
def safe_checkpoint_loading():
    """Within the block, MMEngine loads checkpoints only under the safe policy."""
    from mmengine.runner.checkpoint import CheckpointLoader
    saved = CheckpointLoader._schemes
    table = {prefix: _refuse_scheme(prefix) for prefix in saved}
    table.update({'': _load_local, **{prefix: _load_remote for prefix in HTTP_SCHEMES + MMENGINE_SCHEMES}})
    # longest prefix first, as MMEngine's own table is ordered
    CheckpointLoader._schemes = dict(sorted(table.items(), key=lambda t: t[0], reverse=True))
    try:
        yield
    finally:
        CheckpointLoader._schemes = saved


@HOOKS.register_module()
class SafeCheckpointLoadingHook(Hook):
    """Apply ``safe_checkpoint_loading`` for a whole run (train, val or test)."""

    priority = 'HIGHEST'

    def __init__(self):
        self._scope = None

    def before_run(self, runner) -> None:
        if self._scope is None:
            self._scope = safe_checkpoint_loading()
            self._scope.__enter__()

    def after_run(self, runner) -> None:
        if self._scope is not None:
            self._scope.__exit__(None, None, None)
            self._scope = None
