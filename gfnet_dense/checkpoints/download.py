"""Downloading checkpoints into torch's hub cache, with the checks torch.hub leaves out.

A download here is bounded and checked before anything is kept:

* every connect and every read has a timeout, so a stalled server fails fast
  instead of holding the loader and leaving a truncated body behind;
* the size is capped (``Content-Length`` over the cap is refused before the body
  is read, a longer body is cut off at the cap) and a body shorter than its
  ``Content-Length`` is an error;
* the body must look like a checkpoint: a zip file (torch's format since 1.6) or
  a safetensors file. An error page served with status 200 is never cached;
* old non-zip torch pickles (most of MMEngine's ``open-mmlab://`` and
  ``torchvision://`` files) are kept only when their sha256 is verified, against
  a ``sha256`` argument or the ``-<hex prefix>.`` that torch.hub's convention
  puts in published file names;
* the cache key is a hash of the whole URL, so two URLs ending in the same file
  name never share a cache entry, and files cached by older code under bare
  basenames are never picked up;
* the body goes to a temporary file in the cache folder and is moved into place
  with ``os.replace`` only after every check passed; nothing partial is left.

Network failures raise ``ConnectionError``; bad content, size or hash raise
``DownloadRefused`` (a ``ValueError``). Each message is one line naming the URL,
the cache path and what to do.
"""
import hashlib
import http.client
import json
import os
import os.path as osp
import re
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlparse

from .files import file_sha256
from .reading import (MAX_SAFETENSORS_HEADER, checkpoint_format, not_a_checkpoint,
                      safetensors_header_length)

DEFAULT_TIMEOUT_S = 30.0


def _max_bytes_from_env() -> int:
    value = os.environ.get('GFNET_DENSE_MAX_DOWNLOAD_BYTES', '').strip()
    if not value:
        return 2 << 30
    if not value.isdigit() or int(value) <= 0:
        raise ValueError(f'GFNET_DENSE_MAX_DOWNLOAD_BYTES must be a positive number of bytes, '
                         f'not {value!r}')
    return int(value)


DEFAULT_MAX_BYTES = None  # None: 2 GiB, or GFNET_DENSE_MAX_DOWNLOAD_BYTES when set

HTTP_SCHEMES = ('http://', 'https://')
MMENGINE_SCHEMES = ('open-mmlab://', 'openmmlab://', 'mmcls://', 'torchvision://',
                    'modelzoo://')
# MMEngine's aliases: the same tables under another name
_ALIASES = {'openmmlab': 'open-mmlab', 'modelzoo': 'torchvision'}
# torch.hub's convention: ``name-<first hex digits of the sha256>.ext``
HASH_REGEX = re.compile(r'-([a-f0-9]*)\.')
MIN_HASH_CHARS = 8
_CHUNK = 1 << 16


class DownloadRefused(ValueError):
    """The server answered, but with something that must not be kept as a checkpoint."""


@dataclass
class Downloaded:
    path: str
    sha256_verified: bool


def is_remote(name: str) -> bool:
    """Whether ``name`` is a URL or one of MMEngine's model-zoo names."""
    return isinstance(name, str) and name.startswith(HTTP_SCHEMES + MMENGINE_SCHEMES)


def resolve_url(name: str) -> str:
    """The https URL behind an ``open-mmlab://``, ``mmcls://`` or ``torchvision://`` name,
    from MMEngine's own tables (so the same names mean the same files as in MMEngine,
    including a user's ``$MMENGINE_HOME/open_mmlab.json``); http(s) URLs unchanged."""
    if name.startswith(HTTP_SCHEMES):
        return name
    scheme, sep, model = name.partition('://')
    scheme = _ALIASES.get(scheme, scheme)
    if not sep:
        raise ValueError(f'{name!r} has no URL scheme; expected one of '
                         f'{HTTP_SCHEMES + MMENGINE_SCHEMES}')
    from mmengine.runner import checkpoint as mm
    if scheme == 'open-mmlab':
        table = mm.get_external_models()
        model = mm.get_deprecated_model_names().get(model, model)
    elif scheme == 'mmcls':
        table = mm.get_mmcls_models()
    elif scheme == 'torchvision':
        table = mm.get_torchvision_models()
    else:
        raise ValueError(f'unsupported checkpoint scheme {scheme + sep!r} in {name!r}; '
                         f'expected one of {HTTP_SCHEMES + MMENGINE_SCHEMES}')
    if model not in table:
        import difflib
        close = difflib.get_close_matches(model, list(table), n=3)
        raise ValueError(f'MMEngine knows no {scheme + sep} model {model!r}'
                         + (f'; did you mean {close}?' if close else ''))
    url = table[model]
    if not isinstance(url, str) or not url.startswith(HTTP_SCHEMES):
        raise ValueError(f'{name!r} maps to {url!r} in MMEngine\'s table, not to an http(s) '
                         'URL; give a local file by its path instead')
    return url


def cache_path(url: str, model_dir: str) -> str:
    """``<model_dir>/<sha256(url)[:16]>-<basename>``: the whole URL is the key."""
    base = osp.basename(urlparse(url).path)
    if base in ('', '.', '..'):
        raise ValueError(f'cannot tell a file name from the URL {url!r}')
    return osp.join(model_dir, f'{hashlib.sha256(url.encode()).hexdigest()[:16]}-{base}')


def expected_sha256(url: str, sha256: Optional[str] = None) -> Optional[str]:
    """The hash (or hash prefix) a download must match: ``sha256`` when given, else the
    hex prefix in the published file name when it has at least 8 digits, else None."""
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if not re.fullmatch(r'[0-9a-f]{%d,64}' % MIN_HASH_CHARS, sha256):
            raise ValueError(f'sha256 for {url!r} must be {MIN_HASH_CHARS} to 64 hex digits, '
                             f'not {sha256!r}')
        return sha256
    found = HASH_REGEX.search(osp.basename(urlparse(url).path))
    return found.group(1) if found and len(found.group(1)) >= MIN_HASH_CHARS else None


def _kind(path: str, content_type: str = '') -> str:
    """'zip', 'safetensors', 'legacy' (a pre-zip torch pickle) or what the file is instead:
    ``checkpoint_format``, then whether the zip has its end-of-archive record and the
    safetensors header describes the bytes that arrived."""
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(16)
        kind = checkpoint_format(head, size)
        if kind == 'zip':
            return 'zip' if zipfile.is_zipfile(f) else (
                f'a zip file cut short or damaged ({size} bytes, no end-of-archive record)')
        if kind == 'safetensors':
            n = safetensors_header_length(head, size)
            if n > MAX_SAFETENSORS_HEADER:
                return (f'a safetensors file with a {n}-byte header (at most '
                        f'{MAX_SAFETENSORS_HEADER})')
            f.seek(8)
            return _safetensors_kind(f.read(n), size - 8 - n, size)
    if kind == 'legacy':
        return kind
    if content_type == 'text/html':
        return 'an HTML page, not a checkpoint'
    return f'{size} bytes starting with {head!r}: {not_a_checkpoint(head, size)}'


def _safetensors_kind(header: bytes, data_bytes: int, size: int) -> str:
    try:
        entries = json.loads(header)
        ends = [int(v['data_offsets'][1]) for k, v in entries.items() if k != '__metadata__']
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return f'{size} bytes with a safetensors length prefix but no valid header'
    if max(ends, default=0) != data_bytes:
        return (f'a safetensors file whose header describes {max(ends, default=0)} data bytes '
                f'but {data_bytes} are there (cut short or damaged)')
    return 'safetensors'


def _check(path: str, digest: str, expected: Optional[str], where, source: str,
           content_type: str = '') -> bool:
    """Raise ``DownloadRefused`` unless ``path`` may be kept; return whether it is verified.
    ``source`` starts the reason: 'the server returned' or 'the cached file is'."""
    if expected is not None and not digest.startswith(expected):
        raise DownloadRefused(where(
            f'{source} a file whose sha256 is {digest}, expected {expected}...',
            'it is not the published file; if the "-<hex>" in its name is no hash, pass '
            'sha256= with the hash its publisher gives'))
    verified = expected is not None
    kind = _kind(path, content_type)
    if kind == 'legacy' and not verified:
        raise DownloadRefused(where(
            f'{source} an old (non-zip) torch pickle whose sha256 cannot be verified (no '
            'sha256 given and no "-<hex>" hash prefix in its name)',
            'pass sha256= with the hash its publisher gives, or use a zip-format or '
            '.safetensors file'))
    if kind not in ('zip', 'safetensors', 'legacy'):
        raise DownloadRefused(where(f'{source} {kind}', 'check that the URL names the file '
                                    'itself (open it in a browser), then retry'))
    return verified


def _fetch(url: str, out, timeout: float, max_bytes: int, where) -> tuple:
    """Stream ``url``'s body into ``out``; return its sha256 and Content-Type. ``read1``
    returns after one receive, so the socket timeout bounds every wait, not whole reads."""
    retry = 'check the URL and your connection (proxies come from http(s)_proxy), then retry'
    too_big = (f'raise max_bytes or GFNET_DENSE_MAX_DOWNLOAD_BYTES (now {max_bytes}) if the '
               'file is genuine')
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers={'User-Agent': 'gfnet-dense'}), timeout=timeout)
    except urllib.error.HTTPError as err:
        raise ConnectionError(where(f'the server answered HTTP {err.code} {err.reason}',
                                    'check the URL')) from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise ConnectionError(where(f'the request failed ({getattr(err, "reason", err)}, '
                                    f'timeout {timeout} s)', retry)) from None
    with response:
        declared = response.headers.get('Content-Length', '').strip()
        declared = int(declared) if declared.isdigit() else None
        if declared is not None and declared > max_bytes:
            raise DownloadRefused(where(f'its Content-Length is {declared} bytes, over the '
                                        f'{max_bytes}-byte cap', too_big))
        h, total = hashlib.sha256(), 0
        while True:
            try:
                chunk = response.read1(_CHUNK)
            except (http.client.HTTPException, OSError) as err:
                raise ConnectionError(where(f'the transfer failed after {total} bytes '
                                            f'({type(err).__name__}: {err}, timeout {timeout} s)',
                                            retry)) from None
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise DownloadRefused(where(f'the body goes past the {max_bytes}-byte cap',
                                            too_big))
            h.update(chunk)
            out.write(chunk)
        content_type = response.headers.get_content_type()
    if declared is not None and total != declared:
        raise ConnectionError(where(f'the connection closed after {total} of {declared} bytes',
                                    retry))
    return h.hexdigest(), content_type


def download(name: str, model_dir: Optional[str] = None, sha256: Optional[str] = None,
             timeout: float = DEFAULT_TIMEOUT_S,
             max_bytes: Optional[int] = DEFAULT_MAX_BYTES) -> Downloaded:
    """Download ``name`` (a URL or MMEngine model-zoo name) once into ``model_dir``
    (default ``$TORCH_HOME/hub/checkpoints``) and say where it is and whether its sha256
    was verified. A cached file is reused without network access, checked the same way."""
    url = resolve_url(name)
    if max_bytes is None:
        max_bytes = _max_bytes_from_env()
    if model_dir is None:
        import torch
        model_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
    path = cache_path(url, model_dir)
    expected = expected_sha256(url, sha256)

    def where(what, todo):
        return ' '.join(f'checkpoint {url!r} (cache {path!r}): {what}; {todo}.'.split())

    if osp.isfile(path):
        def cached(what, todo):
            return where(what, f'delete the cached file to download it again ({todo})')
        digest = file_sha256(path) if expected is not None else ''
        return Downloaded(path, _check(path, digest, expected, cached, 'the cached file is'))
    os.makedirs(model_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=model_dir, prefix=f'.{osp.basename(path)}.', suffix='.part')
    try:
        with os.fdopen(fd, 'wb') as out:
            digest, content_type = _fetch(url, out, timeout, max_bytes, where)
        verified = _check(tmp, digest, expected, where, 'the server returned', content_type)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    return Downloaded(path, verified)
