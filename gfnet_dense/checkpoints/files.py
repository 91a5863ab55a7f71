"""Checkpoint files on disk: written so that a run killed mid-save keeps the previous
file, and named by the sha256 of their bytes."""
import hashlib
import os

import torch


def save_atomic(obj, path) -> None:
    """``torch.save(obj, path)`` through a temporary file beside ``path`` that replaces it
    only once complete; a process killed while saving leaves the previous ``path``."""
    path = os.fspath(path)
    tmp = f'{path}.{os.getpid()}.tmp'  # per process: two writers never share one
    try:
        # through a file object: torch.save names the archive inside after a path it is
        # given, so the temporary name would make equal weights differ in their bytes
        with open(tmp, 'wb') as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):  # torch.save failed (disk full, an unpicklable object)
            os.remove(tmp)


def file_sha256(path) -> str:
    """Hex sha256 of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()
