"""Reading checkpoint files without running code from them.

A ``.pth`` file is a pickle, and unpickling can call any function the file
names. Every load in this project goes through ``load_file``:

* ``.safetensors`` files hold tensors only and are read as such;
* anything else is read with torch's weights-only unpickler, which builds
  tensors, plain containers and numbers, plus the exact globals in
  ``training_state_globals()``: numpy arrays and scalars, MMEngine's
  ``HistoryBuffer`` (the message hub of its checkpoints) and
  ``argparse.Namespace`` (the public GFNet training script's ``args``).
  ``HistoryBuffer`` pickles its four statistics methods by reference, as
  ``getattr(HistoryBuffer, 'mean')``; the name ``builtins.getattr`` is bound to
  ``_statistics_method``, which resolves exactly those four and refuses every
  other attribute of every object.

A file that needs anything else fails with ``UnsafeCheckpointError`` naming
the globals it asked for; nothing from it has run by then. URLs are downloaded
into torch's hub cache and read the same way.
"""
import os
import os.path as osp
import pickle
from typing import Dict, List, Optional
from urllib.parse import urlparse

import torch

SAFETENSORS_SUFFIX = '.safetensors'

# HistoryBuffer's statistics, the only attributes a checkpoint may look up by name
_STATISTICS = ('min', 'max', 'current', 'mean')


class UnsafeCheckpointError(pickle.UnpicklingError, ValueError):
    """A checkpoint asks to build Python objects that are not training state."""


def _history_buffer():
    try:
        from mmengine.logging.history_buffer import HistoryBuffer
    except ImportError:  # without MMEngine no file can hold its message hub
        return None
    return HistoryBuffer


def _statistics_method(owner, name):
    """Stand-in for ``getattr`` while unpickling: ``HistoryBuffer.<min|max|current|mean>``
    and nothing else."""
    history_buffer = _history_buffer()
    if history_buffer is not None and owner is history_buffer and name in _STATISTICS:
        return getattr(history_buffer, name)
    raise UnsafeCheckpointError(
        f'the checkpoint asks for attribute {name!r} of {owner!r} (builtins.getattr); only '
        f'HistoryBuffer.{"/".join(_STATISTICS)} may be looked up')


def training_state_globals() -> List[tuple]:
    """``(object, pickled name)`` pairs admitted beside tensors, in the form of
    ``torch.serialization.safe_globals``. Exact names only, no prefixes."""
    import argparse

    import numpy as np

    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    pairs = [(argparse.Namespace, 'argparse.Namespace'),
             (np.ndarray, 'numpy.ndarray'), (np.dtype, 'numpy.dtype'),
             (_statistics_method, 'builtins.getattr')]
    # numpy 2 writes numpy._core, numpy 1 numpy.core: both name the same functions
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        pairs += [(multiarray._reconstruct, f'{module}._reconstruct'),
                  (multiarray.scalar, f'{module}.scalar')]
    # dtype classes (numpy >= 1.25 pickles some dtypes through them)
    for char in '?bhilqBHILQefdgFDGOSUV':
        dtype_class = type(np.dtype(char))
        pairs.append((dtype_class, f'numpy.dtypes.{dtype_class.__name__}'))
    history_buffer = _history_buffer()
    if history_buffer is not None:
        pairs.append((history_buffer, 'mmengine.logging.history_buffer.HistoryBuffer'))
    return pairs


def _admitted_names() -> set:
    return {name for _, name in training_state_globals()}


def _refusal(path: str, err: Exception) -> Exception:
    """The error for a file the weights-only unpickler refused: ``UnsafeCheckpointError``
    naming what it asked for, or ``err`` itself when the file cannot even be scanned
    (truncated, not a checkpoint; the caller reports it as unreadable)."""
    try:
        asked = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001
        return err
    foreign = sorted(set(asked) - _admitted_names())
    reason = str(err).split('WeightsUnpickler error:', 1)[-1]
    reason = ' '.join(reason.split('Check the documentation')[0].split(' Please use')[0].split())
    named = f'; globals outside the policy: {foreign}' if foreign else ''
    return UnsafeCheckpointError(
        f'refusing to load {path!r}: it pickles more than tensors and training state '
        f'({reason}{named}). Nothing from the file was run. If you trust the file, load it '
        'yourself with torch.load(..., weights_only=False) and save its state dict '
        '(or convert it with tools/convert_checkpoint.py, which can write .safetensors).')


def check_is_file(path: str, what: str = 'checkpoint') -> str:
    """``path`` as a string, or a clear error when it is missing or a directory."""
    path = osp.expanduser(os.fspath(path))
    if osp.isdir(path):
        inside = sorted(f for f in os.listdir(path)
                        if f.endswith(('.pth', '.pt', '.ckpt', SAFETENSORS_SUFFIX)))
        hint = f'; checkpoint files in it: {inside[:10]}' if inside else ''
        raise IsADirectoryError(f'{what} {path!r} is a directory, not a file{hint}')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} file {path!r} does not exist')
    return path


def load_file(path: str, map_location='cpu') -> Dict:
    """Load a checkpoint file (``.pth`` / ``.safetensors``) under the policy above."""
    path = check_is_file(path)
    if path.endswith(SAFETENSORS_SUFFIX):
        from safetensors.torch import load_file as load_safetensors
        device = map_location if isinstance(map_location, str) else 'cpu'
        return load_safetensors(path, device=device)
    try:
        with torch.serialization.safe_globals(training_state_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise _refusal(path, err) from None


def is_url(name: str) -> bool:
    return isinstance(name, str) and name.startswith(('http://', 'https://'))


def download(url: str, model_dir: Optional[str] = None) -> str:
    """Download ``url`` once into torch's hub cache (``$TORCH_HOME/hub/checkpoints``) and
    return the local path; a failed download leaves no partial file behind."""
    model_dir = model_dir or osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    name = osp.basename(urlparse(url).path)
    if not name:
        raise ValueError(f'cannot tell a file name from the URL {url!r}')
    path = osp.join(model_dir, name)
    if not osp.isfile(path):
        try:
            torch.hub.download_url_to_file(url, path, progress=False)
        except Exception as err:  # noqa: BLE001  (network errors of every kind)
            raise ConnectionError(f'could not download checkpoint {url!r}: {err}') from err
    return path


def load_checkpoint(name: str, map_location='cpu') -> Dict:
    """``load_file`` for a local path or an ``http(s)://`` URL."""
    if is_url(name):
        name = download(name)
    return load_file(name, map_location)
