"""The checkpoint policy of ``gfnet_dense.checkpoints`` for MMEngine's loaders.

MMEngine reads every checkpoint (``load_from``, ``resume``, test checkpoints,
``init_cfg=dict(type='Pretrained')`` and the inference APIs) through
``CheckpointLoader``'s scheme table. This module puts our loaders in it at two
strengths:

* ``install_safe_loading()``, process-wide, called when ``gfnet_dense.mm`` is
  imported (``import gfnet_dense``, or a config's
  ``custom_imports=dict(imports=['gfnet_dense'])``): local files, ``http(s)://``
  URLs and MMEngine's ``open-mmlab://``, ``openmmlab://``, ``mmcls://``,
  ``torchvision://`` and ``modelzoo://`` names load under the policy (files read
  as data; downloads with a timeout, a size cap and checked contents). That is
  what makes MMSeg's and MMDet's own inference APIs (``mmseg.apis.init_model``,
  ``MMSegInferencer``, ``mmdet.apis.init_detector``, ``DetInferencer``) read the
  checkpoints MMEngine's training writes (their message hub's ``HistoryBuffer``
  and numpy values), which torch >= 2.6's weights-only default refuses; torch's
  process-wide allow-list (``torch.serialization.add_safe_globals``) is left as
  it is. Called with a config file's path, these APIs run ``Config.fromfile``,
  which imports the config's ``custom_imports`` before the checkpoint is read, so
  our configs need nothing more. Given only a checkpoint (``MMSegInferencer(
  model=None, weights=...)``, the config then read from the checkpoint) or a
  config without ``custom_imports``, ``import gfnet_dense`` first.
  Other schemes stay MMEngine's: ``s3://`` / ``petrel://`` (Ceph) and ``pavi://``
  are cluster storage a user sets up on purpose, their loaders use ``torch.load``
  whose weights-only default (torch >= 2.6; this project pins 2.11) runs no code,
  and refusing them for every program that merely imports ``gfnet_dense`` would
  break those set-ups. The stricter scope below refuses them.
* ``safe_checkpoint_loading()``, for the duration of a ``with`` block: the same
  loaders, and every other scheme (``s3://``, ``pavi://``, ...) refused; the
  previous table is restored afterwards. Our tools wrap their run in it. In
  MMSeg's / MMDet's own tools, add one line to the config::

      custom_hooks = [dict(type='SafeCheckpointLoadingHook')]

  which applies it from ``before_run`` (before MMEngine loads anything) to
  ``after_run``.
"""
import contextlib

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..checkpoints import load_file, read_checkpoint
from ..checkpoints.download import HTTP_SCHEMES, MMENGINE_SCHEMES


# MMEngine calls a loader as ``loader(filename, map_location)`` and logs
# ``Loads checkpoint by <name[10:]> backend``: the names read ``safe_local`` / ``safe_download``.
def load_from_safe_local(filename, map_location=None, *args, **kwargs):
    """A local file, read as data (``map_location``: a device, or a callable, which
    keeps tensors on the CPU for MMEngine to copy into the model)."""
    return load_file(filename, map_location)


def load_from_safe_download(filename, map_location=None, *args, **kwargs):
    """An ``http(s)://`` URL or MMEngine model-zoo name: downloaded, then read as data."""
    return read_checkpoint(filename, map_location)


def _refuse_scheme(prefix: str):
    def refuse(filename, map_location=None, *args, **kwargs):
        raise ValueError(f'checkpoint {filename!r}: the {prefix!r} scheme is not read under '
                         'the safe loading policy; download the file and give its local '
                         'path, an http(s) URL or an open-mmlab:// / torchvision:// name')
    refuse.__name__ = 'load_from_refused_scheme'
    return refuse


def _policy_loaders() -> dict:
    """Prefix -> our loader, for the schemes the policy reads."""
    return {'': load_from_safe_local,
            **{prefix: load_from_safe_download for prefix in HTTP_SCHEMES + MMENGINE_SCHEMES}}


_installed = False


def install_safe_loading() -> None:
    """Register our loaders in MMEngine's scheme table for local files, ``http(s)://``
    and MMEngine's model-zoo names, process-wide (module docstring); other schemes
    keep MMEngine's loaders. Idempotent: a table that already holds them is left
    untouched. Called when ``gfnet_dense.mm`` is imported."""
    global _installed
    from mmengine.runner.checkpoint import CheckpointLoader
    _installed = True
    loaders = _policy_loaders()
    if all(CheckpointLoader._schemes.get(prefix) is loader for prefix, loader in loaders.items()):
        return
    CheckpointLoader.register_scheme('', load_from_safe_local, force=True)
    CheckpointLoader.register_scheme(list(HTTP_SCHEMES + MMENGINE_SCHEMES),
                                     load_from_safe_download, force=True)


@contextlib.contextmanager
def safe_checkpoint_loading():
    """Within the block, MMEngine loads checkpoints only under the safe policy."""
    from mmengine.runner.checkpoint import CheckpointLoader
    saved = CheckpointLoader._schemes
    table = {prefix: _refuse_scheme(prefix) for prefix in saved}
    table.update(_policy_loaders())
    # longest prefix first, as MMEngine's own table is ordered
    CheckpointLoader._schemes = dict(sorted(table.items(), key=lambda t: t[0], reverse=True))
    try:
        yield
    finally:
        CheckpointLoader._schemes = saved
        if _installed:  # installed within the block: keep it (a no-op otherwise)
            install_safe_loading()


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
