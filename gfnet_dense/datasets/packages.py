"""Real data from Debian packages, fetched on request into a cache.

Nothing here runs at import time. A Debian package is unpacked with
``apt-get download`` + ``dpkg -x`` (nothing is installed system-wide) unless it is
already installed. The cache is ``$GFNET_DENSE_CACHE`` or ``~/.cache/gfnet_dense``.
"""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


class RealDataUnavailable(RuntimeError):
    """A registry package with real data could not be had on this machine."""


def cache_dir() -> Path:
    root = os.environ.get('GFNET_DENSE_CACHE') or Path.home() / '.cache' / 'gfnet_dense'
    return Path(root)


def _run(cmd, cwd) -> None:
    try:
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise RealDataUnavailable(f'{cmd[0]} is not on this machine ({e})') from None
    except subprocess.CalledProcessError as e:
        tail = (e.stderr or e.stdout or '').strip().splitlines()[-3:]
        raise RealDataUnavailable(f'`{" ".join(cmd)}` failed: {" / ".join(tail)}') from None


def debian_files(package: str, path: str) -> Path:
    """The directory ``path`` (absolute, e.g. ``/usr/share/mricron/templates``) of
    Debian package ``package``: the installed one, else unpacked into the cache."""
    installed = Path(path)
    if installed.is_dir() and any(installed.iterdir()):
        return installed
    root = cache_dir() / 'debian' / package
    unpacked = root / path.lstrip('/')
    if unpacked.is_dir() and any(unpacked.iterdir()):
        return unpacked
    with tempfile.TemporaryDirectory() as tmp:
        try:
            _run(['apt-get', 'download', package], tmp)
            debs = list(Path(tmp).glob(f'{package}_*.deb'))
            if not debs:
                raise RealDataUnavailable('apt-get download wrote no .deb file')
            staging = Path(tmp) / 'root'
            _run(['dpkg', '-x', str(debs[0]), str(staging)], tmp)
        except RealDataUnavailable as e:
            raise RealDataUnavailable(
                f'Debian package {package!r} could not be fetched ({e}). Install it '
                f'(`apt-get install {package}`) or unpack it into {root}.') from None
        if not (staging / path.lstrip('/')).is_dir():
            raise RealDataUnavailable(f'Debian package {package!r} has no {path}')
        shutil.rmtree(root, ignore_errors=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(root))
    return unpacked

