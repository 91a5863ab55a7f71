"""Checkpoint files read as data: nothing in a file runs, describes memory or
makes the loader allocate far beyond the file's size.

Formats: torch's zip format (``torch.save`` since torch 1.6) and safetensors,
told apart by their first bytes. Legacy (non-zip) torch files are refused,
except a download whose sha256 matched its published hash (``read_checkpoint``).
The pickle inside a torch file is read by ``unpickler.DataUnpickler``.

Bounds: storages are the file's own bytes (uncompressed zip records whose sizes
match the tensors' element counts, read once each, in chunks); every tensor is a
view inside its storage with no stride-0 or self-overlapping dimensions; views
add up to at most ``MAX_VIEW_RATIO`` times the stored bytes; the pickle's own
limits are in ``unpickler``.
"""
import json
import math
import os
import os.path as osp
import zipfile
from typing import Dict, Optional, Tuple

import torch

from .checks import UnreadableCheckpointError, UnsafeCheckpointError, show_key
from .unpickler import DataUnpickler, Storage, as_int, check_view, int_tuple, materialize

MAX_ZIP_RECORDS = 50_000
MAX_DIRECTORY_ENTRY = 256  # bytes; torch's entries take about 100
MAX_VIEW_RATIO = 4
MAX_SAFETENSORS_HEADER = 64 << 20
_CHUNK = 16 << 20

_ZIP_MAGIC = b'PK\x03\x04'
_EMPTY_ZIP_MAGIC = b'PK\x05\x06'
# what torch.save(..., _use_new_zipfile_serialization=False) writes first: PROTO 2, LONG1 magic
_LEGACY_MAGIC = b'\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19'


# ------------------------------------------------------------------- formats
def _read_into(f, out: torch.Tensor, what: str) -> None:
    """Fill the uint8 tensor ``out`` from ``f`` in bounded chunks."""
    view = memoryview(out.numpy()) if out.numel() else memoryview(b'')
    pos = 0
    while pos < len(view):
        chunk = f.read(min(_CHUNK, len(view) - pos))
        if not chunk:
            raise UnreadableCheckpointError(f'{what} is truncated')
        view[pos:pos + len(chunk)] = chunk
        pos += len(chunk)


def _zip_directory_size(f, size: int) -> Tuple[int, int]:
    """``(entries, bytes)`` of the central directory as its end record announces them,
    read before zipfile builds an object for every entry it finds in those bytes."""
    tail_len = min(size, 65536 + 22)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(_EMPTY_ZIP_MAGIC)
    if at < 0 or at + 22 > len(tail):
        raise UnreadableCheckpointError('the zip file has no end-of-directory record')
    count = int.from_bytes(tail[at + 10:at + 12], 'little')
    directory = int.from_bytes(tail[at + 12:at + 16], 'little')
    if at >= 20 and tail[at - 20:at - 16] == b'PK\x06\x07':  # zip64
        f.seek(int.from_bytes(tail[at - 12:at - 4], 'little'))
        record = f.read(56)
        if record[:4] != b'PK\x06\x06':
            raise UnreadableCheckpointError('the zip64 end-of-directory record is missing')
        count = int.from_bytes(record[32:40], 'little')
        directory = int.from_bytes(record[40:48], 'little')
    return count, directory


def _read_torch_zip(f, size: int):
    count, directory = _zip_directory_size(f, size)
    if count > MAX_ZIP_RECORDS or directory > MAX_ZIP_RECORDS * MAX_DIRECTORY_ENTRY:
        raise UnsafeCheckpointError(
            f'the zip file announces {count} records in a {directory}-byte directory (at '
            f'most {MAX_ZIP_RECORDS} records of {MAX_DIRECTORY_ENTRY} bytes are read)')
    f.seek(0)
    archive = zipfile.ZipFile(f)
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_RECORDS:
        raise UnsafeCheckpointError(f'the zip file holds {len(infos)} records (at most '
                                    f'{MAX_ZIP_RECORDS} are read)')
    pickles = [i for i in infos if i.filename.count('/') == 1 and i.filename.endswith('/data.pkl')]
    if len(pickles) != 1:
        raise UnreadableCheckpointError('the zip file is not a torch checkpoint '
                                        '(no single <name>/data.pkl record)')
    prefix = pickles[0].filename[:-len('data.pkl')]
    records = {}
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise UnsafeCheckpointError(
                f'zip record {show_key(info.filename)[:80]} is compressed; torch.save stores '
                'records uncompressed (re-save the checkpoint with torch.save)')
        if info.filename.startswith(prefix + 'data/'):
            records[info.filename[len(prefix) + len('data/'):]] = info
    order = prefix + 'byteorder'
    if order in archive.namelist() and archive.read(order) != b'little':
        raise UnreadableCheckpointError('the checkpoint was saved big-endian; re-save it '
                                        'with torch.save on a little-endian machine')
    storages = {}

    def read_storage(dtype, key, numel):
        info = records.get(key)
        if info is None:
            raise UnreadableCheckpointError(f'storage {show_key(key)[:40]} is not in the file')
        itemsize = torch.empty(0, dtype=dtype).element_size()
        if info.file_size != numel * itemsize:
            raise UnsafeCheckpointError(
                f'storage {show_key(key)[:40]} holds {info.file_size} bytes, but the pickle '
                f'describes {numel} elements of {dtype} ({numel * itemsize} bytes)')
        if key in storages:
            if storages[key].data.dtype != dtype:
                raise UnsafeCheckpointError(f'storage {show_key(key)[:40]} is read as two dtypes')
            return storages[key]
        raw = torch.empty(info.file_size, dtype=torch.uint8)
        with archive.open(info) as record:
            _read_into(record, raw, f'storage {key}')
        if dtype == torch.bool and bool((raw > 1).any()):
            raise UnsafeCheckpointError(f'bool storage {show_key(key)[:40]} holds bytes other '
                                        'than 0 and 1')
        storages[key] = Storage(raw.view(dtype))
        return storages[key]

    unpickler = DataUnpickler(archive.read(pickles[0]), read_storage)
    root = unpickler.load()
    stored = sum(s.data.numel() * s.data.element_size() for s in storages.values())
    if unpickler.view_bytes > MAX_VIEW_RATIO * stored + (1 << 20):
        raise UnsafeCheckpointError(
            f'the tensors view {unpickler.view_bytes} bytes of {stored} stored bytes; more '
            f'than {MAX_VIEW_RATIO}x means many views of the same data')
    return materialize(root, unpickler.charge_bytes)


_SAFETENSORS_DTYPES = {'F64': torch.float64, 'F32': torch.float32, 'F16': torch.float16,
                       'BF16': torch.bfloat16, 'I64': torch.int64, 'I32': torch.int32,
                       'I16': torch.int16, 'I8': torch.int8, 'U8': torch.uint8,
                       'BOOL': torch.bool}


def checkpoint_format(head: bytes, size: int) -> Optional[str]:
    """What a file of ``size`` bytes starting with ``head`` (its first 16 bytes) is: 'zip'
    (torch's format), 'safetensors', 'legacy' (a pre-zip torch pickle) or None (none of
    them: ``not_a_checkpoint`` says what)."""
    if head.startswith(_ZIP_MAGIC) or head.startswith(_EMPTY_ZIP_MAGIC):
        return 'zip'
    if safetensors_header_length(head, size) is not None:
        return 'safetensors'
    return 'legacy' if head.startswith(_LEGACY_MAGIC) else None


def safetensors_header_length(head: bytes, size: int) -> Optional[int]:
    """The JSON header's length a safetensors file starts with, or None where ``head``
    does not start one that fits in ``size`` bytes."""
    if len(head) < 9 or head[8:9] != b'{':
        return None
    length = int.from_bytes(head[:8], 'little')
    return length if 2 <= length <= size - 8 else None


def _read_safetensors(f, size: int, header_length: int) -> Dict[str, torch.Tensor]:
    if header_length > MAX_SAFETENSORS_HEADER:
        raise UnsafeCheckpointError(f'the safetensors header is {header_length} bytes '
                                    f'(at most {MAX_SAFETENSORS_HEADER} are read)')
    f.seek(8)
    header = json.loads(f.read(header_length))
    if not isinstance(header, dict):
        raise UnreadableCheckpointError('the safetensors header is not a JSON object')
    header.pop('__metadata__', None)
    data_start, data_size = 8 + header_length, size - 8 - header_length
    entries = []
    for name, info in header.items():
        where = f'safetensors tensor {show_key(name)[:80]}'
        if not isinstance(info, dict) or info.get('dtype') not in _SAFETENSORS_DTYPES:
            raise UnsafeCheckpointError(f'{where} has no numeric dtype')
        dtype = _SAFETENSORS_DTYPES[info['dtype']]
        shape = info.get('shape')
        offsets = info.get('data_offsets')
        if not isinstance(shape, list) or not isinstance(offsets, list) or len(offsets) != 2:
            raise UnreadableCheckpointError(f'{where} lacks a shape or data offsets')
        shape = int_tuple(tuple(shape), 'shape')
        begin, end = (as_int(o, f'{where} offset', 0, data_size) for o in offsets)
        itemsize = torch.empty(0, dtype=dtype).element_size()
        if end - begin != math.prod(shape) * itemsize:
            raise UnsafeCheckpointError(f'{where}: offsets {begin}..{end} do not hold shape '
                                        f'{shape} of {dtype}')
        entries.append((begin, end, name, dtype, shape))
    entries.sort(key=lambda e: e[:2])
    for before, after in zip(entries, entries[1:]):
        if after[0] < before[1]:
            raise UnsafeCheckpointError(f'safetensors tensors {show_key(before[2])[:60]} and '
                                        f'{show_key(after[2])[:60]} overlap')
    state = {}
    for begin, end, name, dtype, shape in entries:
        tensor = torch.empty(shape, dtype=dtype)
        f.seek(data_start + begin)
        _read_into(f, tensor.view(-1).view(torch.uint8), f'safetensors tensor {name}')
        if dtype == torch.bool and bool((tensor.view(torch.uint8) > 1).any()):
            raise UnsafeCheckpointError(f'bool tensor {show_key(name)[:60]} holds bytes other '
                                        'than 0 and 1')
        state[name] = tensor
    return state


def _legacy_torch(path: str, map_location):
    """A legacy file whose download matched its published sha256: torch's weights-only
    loader, its tensors then held to the same view rules."""
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    tensors = checkpoint.values() if isinstance(checkpoint, dict) else ()
    for value in tensors:
        if isinstance(value, torch.Tensor):
            check_view(tuple(value.shape), value.stride(), value.storage_offset(),
                       value.untyped_storage().nbytes() // value.element_size())
    return checkpoint


def _to_device(obj, device: torch.device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return type(obj)((k, _to_device(v, device)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)) and not isinstance(obj, torch.Size):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def _device(map_location) -> Optional[torch.device]:
    """Where tensors go: ``None`` keeps them on the CPU (also for callables, as
    MMEngine's loaders then copy them into the model on its device)."""
    if isinstance(map_location, (str, torch.device)) and str(map_location) != 'cpu':
        return torch.device(map_location)
    return None


def check_is_file(path, what: str = 'checkpoint') -> str:
    """``path`` as a string, or a clear error when it is missing or a directory."""
    path = osp.expanduser(os.fspath(path))
    if osp.isdir(path):
        inside = sorted(f for f in os.listdir(path)
                        if f.endswith(('.pth', '.pt', '.ckpt', '.safetensors')))
        hint = f'; checkpoint files in it: {inside[:10]}' if inside else ''
        raise IsADirectoryError(f'{what} {path!r} is a directory, not a file{hint}')
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} file {path!r} does not exist')
    return path


def _one_line(err: BaseException) -> str:
    text = ' '.join(str(err).split()) or type(err).__name__
    return show_key(text)[:300]


def load_file(path, map_location='cpu', allow_legacy: bool = False):
    """Read a checkpoint file as data (module docstring): a dict, or
    ``UnsafeCheckpointError`` / ``UnreadableCheckpointError`` naming what was wrong."""
    path = check_is_file(path)
    try:
        with open(path, 'rb') as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(16)
            kind = checkpoint_format(head, size)
            if kind == 'zip':
                checkpoint = _read_torch_zip(f, size)
            elif kind == 'safetensors':
                checkpoint = _read_safetensors(f, size, safetensors_header_length(head, size))
            elif kind == 'legacy' and allow_legacy:
                checkpoint = _legacy_torch(path, map_location)
            else:
                raise UnreadableCheckpointError(not_a_checkpoint(head, size))
    except (UnsafeCheckpointError, UnreadableCheckpointError) as err:
        kind = type(err)
        raise kind(f'refusing to load checkpoint {path!r}: {_one_line(err)}. Nothing from the file '
                   'was run.') from None
    except (MemoryError, RecursionError, Exception) as err:  # noqa: BLE001 (any parse error)
        raise UnreadableCheckpointError(
            f'cannot read checkpoint {path!r} ({type(err).__name__}: {_one_line(err)}); the '
            'file is corrupt, truncated or not a PyTorch / safetensors checkpoint') from None
    device = _device(map_location)
    return _to_device(checkpoint, device) if device is not None else checkpoint


def not_a_checkpoint(head: bytes, size: int) -> str:
    """Why a file starting with ``head`` is no checkpoint, for an error message."""
    if size == 0:
        return 'the file is empty'
    if head.startswith(_LEGACY_MAGIC):
        return ('it is a legacy (non-zip) torch file, which is not read: its storages can be '
                'left unwritten. If you trust it, re-save it in the current format: '
                'torch.save(torch.load(path, weights_only=True), new_path)')
    if head[:1] == b'\x80':
        return 'it is a bare pickle, not a torch or safetensors checkpoint; it was not unpickled'
    text = head[3:] if head.startswith(b'\xef\xbb\xbf') else head  # a UTF-8 BOM
    if text.lstrip().lower().startswith((b'<!doctype', b'<html')):
        return 'it is an HTML page, not a checkpoint (a failed download?)'
    return ('it is neither a torch (zip) nor a safetensors checkpoint: the file is corrupt, '
            'truncated or of another format')


def read_checkpoint(name, map_location='cpu'):
    """Read a checkpoint file, or download then read an ``http(s)://``,
    ``open-mmlab://``, ``mmcls://`` or ``torchvision://`` name (``download.py``)."""
    from .download import download, is_remote
    if isinstance(name, str) and is_remote(name):
        fetched = download(name)
        return load_file(fetched.path, map_location, allow_legacy=fetched.sha256_verified)
    return load_file(name, map_location)
