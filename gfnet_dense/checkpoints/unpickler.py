"""The pickle inside a torch checkpoint, read as data.

``DataUnpickler`` is the pure-Python unpickler (its memo is a dict, so a huge
memo index costs nothing) with every opcode counted, ``BUILD`` limited to inert
records and globals looked up in one table: tensors and parameters over storages
of numeric dtypes, plain containers, numbers and strings, numpy arrays and
scalars of numeric dtypes, MMEngine's ``HistoryBuffer`` (which pickles its
statistics methods as ``getattr(HistoryBuffer, 'mean')``) and
``argparse.Namespace``. numpy, ``HistoryBuffer`` and ``Namespace`` objects are
read as records and built from checked values by ``materialize`` once the
whole pickle has been read.
"""
import io
import math
import pickle
from argparse import Namespace
from collections import OrderedDict
from typing import Dict

import numpy as np
import torch

from .checks import UnsafeCheckpointError, show_key

MAX_PICKLE_OPS = 500_000
MAX_TENSORS = 100_000
MAX_DEPTH = 100
MAX_DIMS = 32


# ---------------------------------------------------------------------- tensors
_STORAGE_DTYPES = {
    'DoubleStorage': torch.float64, 'FloatStorage': torch.float32,
    'HalfStorage': torch.float16, 'BFloat16Storage': torch.bfloat16,
    'LongStorage': torch.int64, 'IntStorage': torch.int32, 'ShortStorage': torch.int16,
    'CharStorage': torch.int8, 'ByteStorage': torch.uint8, 'BoolStorage': torch.bool,
    'ComplexFloatStorage': torch.complex64, 'ComplexDoubleStorage': torch.complex128,
    'UntypedStorage': torch.uint8,
}
_TORCH_DTYPES = {str(d).split('.')[-1]: d for d in set(_STORAGE_DTYPES.values())}


class _StorageType:
    """What ``torch.FloatStorage`` and its kin stand for in a pickle: a dtype."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


class Storage:
    """One storage read from the file: a 1-D tensor of its dtype."""

    def __init__(self, data: torch.Tensor):
        self.data = data


def as_int(value, what: str, low: int = 0, high: int = 1 << 48) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UnsafeCheckpointError(f'{what} must be an int in [{low}, {high}], got '
                                    f'{show_key(value)[:80]}')
    return value


def int_tuple(values, what: str):
    if not isinstance(values, tuple) or len(values) > MAX_DIMS:
        raise UnsafeCheckpointError(f'tensor {what} must be a tuple of at most {MAX_DIMS} ints')
    return tuple(as_int(v, f'tensor {what} entry') for v in values)


def check_view(size, stride, offset: int, storage_numel: int) -> None:
    """A view must lie inside its storage and address every element at most once."""
    if math.prod(size) == 0:
        if offset > storage_numel:
            raise UnsafeCheckpointError('an empty tensor starts past the end of its storage')
        return
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage_numel:
        raise UnsafeCheckpointError(
            f'a tensor view (size {size}, stride {stride}, offset {offset}) needs element '
            f'{last} of a storage of {storage_numel} elements')
    span = 0
    for s, n in sorted((s, n) for n, s in zip(size, stride) if n > 1):
        if s <= span:
            raise UnsafeCheckpointError(
                f'a tensor view (size {size}, stride {stride}) addresses elements more than '
                'once (stride 0 or overlapping strides); such views are not stored weights')
        span += (n - 1) * s


# ------------------------------------------------------------- numpy records
_NUMPY_DTYPES = frozenset({'?', 'b1', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4', 'u8',
                           'f2', 'f4', 'f8', 'c8', 'c16'})


class _Record:
    """An object the pickle describes, held as inert data until ``materialize``."""

    state = None

    def __new__(cls, *args):
        record = object.__new__(cls)
        record.args = args
        return record

    def __setstate__(self, state):
        self.state = state


class _DTypeRecord(_Record):
    def dtype(self) -> np.dtype:
        name = self.args[0] if self.args else None
        if name not in _NUMPY_DTYPES:
            raise UnsafeCheckpointError(
                f'numpy dtype {show_key(name)[:40]} is not a numeric dtype; only '
                'bool, int, uint, float and complex arrays are read')
        dtype = np.dtype(name)
        if self.state is not None:
            state = self.state
            if not (isinstance(state, tuple) and len(state) in (8, 9)
                    and state[1] in ('<', '>', '|', '=') and state[2:5] == (None,) * 3):
                raise UnsafeCheckpointError(
                    f'numpy dtype {name!r} comes with fields, a subarray or an unknown state; '
                    'only plain numeric dtypes are read')
            if state[1] in '<>':
                dtype = dtype.newbyteorder(state[1])
        return dtype


def _numpy_dtype(name, align=False, copy=False):
    return _DTypeRecord(name)


class _ArrayRecord(_Record):
    def array(self) -> np.ndarray:
        state = self.state
        if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1):
            raise UnsafeCheckpointError('a numpy array without a valid state')
        _, shape, dtype, fortran, raw = state
        shape = int_tuple(shape, 'numpy shape')
        if not isinstance(dtype, _DTypeRecord):
            raise UnsafeCheckpointError('a numpy array whose dtype is not a numeric dtype')
        dtype = dtype.dtype()
        if not isinstance(raw, (bytes, bytearray)) or len(raw) != math.prod(shape) * dtype.itemsize:
            raise UnsafeCheckpointError(
                f'a numpy array of shape {shape} and dtype {dtype} with '
                f'{len(raw) if isinstance(raw, (bytes, bytearray)) else "no"} bytes of data')
        flat = np.frombuffer(bytearray(raw), dtype=dtype)
        return flat.reshape(shape, order='F' if fortran is True else 'C')


class _NDArrayName:
    """``numpy.ndarray`` as a pickle names it: an argument of ``_reconstruct``, never called."""


_NDARRAY = _NDArrayName()


def _numpy_reconstruct(cls, shape=None, typecode=None):
    if cls is not _NDARRAY:
        raise UnsafeCheckpointError('numpy _reconstruct is read for numpy.ndarray only')
    return _ArrayRecord()


def _numpy_scalar(dtype, raw=None):
    if not isinstance(dtype, _DTypeRecord):
        raise UnsafeCheckpointError('a numpy scalar whose dtype is not a numeric dtype')
    dtype = dtype.dtype()
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != dtype.itemsize:
        raise UnsafeCheckpointError(f'a numpy {dtype} scalar without {dtype.itemsize} bytes')
    return np.frombuffer(bytes(raw), dtype=dtype)[0]


def _latin1(text, encoding='latin1'):
    """``_codecs.encode``: how protocol 2 pickles bytes."""
    if not isinstance(text, str) or encoding not in ('latin1', 'latin-1'):
        raise UnsafeCheckpointError('_codecs.encode is read for latin1 text only')
    return text.encode('latin1')


def _of_plain_items(build, what: str):
    """``set``, ``frozenset``, ``OrderedDict``, ``torch.Size`` called on a list or tuple
    only: called on a tensor or array they would build one object per element."""
    def call(items=()):
        if not isinstance(items, (list, tuple)):
            raise UnsafeCheckpointError(f'{what}() is read for a list or tuple only, '
                                        f'not a {type(items).__name__}')
        return build(items)
    return call


class _Charged:
    """A callable whose output grows with its argument: a pickle could call it again
    and again on one memoized argument, so each call is charged to the reading budget
    (``cost`` counts items against the opcode budget, or bytes against the byte budget)."""

    def __init__(self, fn, cost: str):
        self.fn, self.cost = fn, cost


def _size_of(args) -> int:
    first = args[0] if args else ()
    return len(first) if isinstance(first, (list, tuple, str, bytes)) else 0


def _device(kind, index=None):
    if not isinstance(kind, str) or not (index is None or type(index) is int):
        raise UnsafeCheckpointError('torch.device() is read for a name and an index only')
    return torch.device(kind) if index is None else torch.device(kind, index)


def _complex(real=0.0, imag=0.0):
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (real, imag)):
        raise UnsafeCheckpointError('complex() is read for two real numbers only')
    return complex(real, imag)


# ------------------------------------------------------- MMEngine / argparse
_STATISTICS = ('min', 'max', 'current', 'mean')


class _HistoryBufferRecord(_Record):
    pass


class _NamespaceRecord(_Record):
    pass


class _StatisticsMethod:
    def __init__(self, name: str):
        self.name = name


def _statistics_getattr(owner, name):
    """``getattr`` while reading: ``HistoryBuffer.<min|max|current|mean>`` and nothing else."""
    if owner is _HistoryBufferRecord and name in _STATISTICS:
        return _StatisticsMethod(name)
    raise UnsafeCheckpointError(
        f"the checkpoint asks for attribute '{show_key(name)[:60]}' of "
        f'{getattr(owner, "__name__", type(owner).__name__)} (builtins.getattr); only '
        f'HistoryBuffer.{"/".join(_STATISTICS)} may be looked up')


# ------------------------------------------------------------------- unpickler
def _globals() -> Dict[tuple, object]:
    table = {
        ('collections', 'OrderedDict'): _Charged(_of_plain_items(OrderedDict, 'OrderedDict'),
                                                 'items'),
        ('torch._utils', '_rebuild_tensor_v2'): '_rebuild_tensor',
        ('torch._utils', '_rebuild_parameter'): '_rebuild_parameter',
        ('torch', 'Size'): _Charged(_of_plain_items(torch.Size, 'torch.Size'), 'items'),
        ('torch', 'device'): _device,
        ('_codecs', 'encode'): _Charged(_latin1, 'bytes'),
        ('numpy', 'ndarray'): _NDARRAY,
        ('numpy', 'dtype'): _numpy_dtype,
        ('mmengine.logging.history_buffer', 'HistoryBuffer'): _HistoryBufferRecord,
        ('argparse', 'Namespace'): _NamespaceRecord,
    }
    for name, dtype in _STORAGE_DTYPES.items():
        table[('torch', name)] = _StorageType(dtype)
    for name, dtype in _TORCH_DTYPES.items():
        table[('torch', name)] = dtype
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        table[(module, '_reconstruct')] = _numpy_reconstruct
        table[(module, 'scalar')] = _numpy_scalar
    # protocol 2 writes Python 3's builtins under their Python 2 module name
    for module in ('builtins', '__builtin__'):
        table[(module, 'set')] = _Charged(_of_plain_items(set, 'set'), 'items')
        table[(module, 'frozenset')] = _Charged(_of_plain_items(frozenset, 'frozenset'),
                                                'items')
        table[(module, 'complex')] = _complex
        table[(module, 'getattr')] = _statistics_getattr
    return table


_GLOBALS = _globals()


def _counted(op):
    def run(unpickler):
        unpickler.charge_ops(1)
        op(unpickler)
    return run


def _load_build(unpickler):
    state = unpickler.stack.pop()
    target = unpickler.stack[-1]
    if type(target) is OrderedDict and isinstance(state, dict) and set(state) == {'_metadata'}:
        target._metadata = state['_metadata']  # a module's state_dict() carries its versions
        return
    if not isinstance(target, _Record):
        raise UnsafeCheckpointError(
            f'the pickle sets the state of a {type(target).__name__}; only numpy, '
            'HistoryBuffer and Namespace records take a state')
    target.__setstate__(state)


class DataUnpickler(pickle._Unpickler):
    """Reads one ``data.pkl``; ``read_storage(dtype, key, numel)`` gives its storages."""

    dispatch = {code: _counted(op) for code, op in pickle._Unpickler.dispatch.items()}
    dispatch[pickle.BUILD[0]] = _counted(_load_build)

    def __init__(self, data: bytes, read_storage):
        super().__init__(io.BytesIO(data))
        self.ops = 0
        self.read_storage = read_storage
        self.view_bytes = 0
        self.tensors = 0
        self.built_bytes = 0
        self.max_built_bytes = 2 * len(data) + (1 << 20)

    def charge_ops(self, count: int) -> None:
        self.ops += count
        if self.ops > MAX_PICKLE_OPS:
            raise UnsafeCheckpointError(
                f'the pickle runs more than {MAX_PICKLE_OPS} operations; genuine checkpoints '
                'need far fewer (their tensors are stored beside the pickle)')

    def charge_bytes(self, count: int) -> None:
        self.built_bytes += count
        if self.built_bytes > self.max_built_bytes:
            raise UnsafeCheckpointError(
                f'the pickle builds more than {self.max_built_bytes} bytes of strings and '
                'arrays, more than twice its own size')

    def find_class(self, module, name):
        found = _GLOBALS.get((module, name))
        if found is None:
            raise UnsafeCheckpointError(
                f'the checkpoint asks for {show_key(module)[:80]}.{show_key(name)[:80]}, which '
                'is not a tensor, number, container, numpy array or training state')
        if isinstance(found, _Charged):
            charge = self.charge_ops if found.cost == 'items' else self.charge_bytes

            def charged(*args, _fn=found.fn):
                charge(_size_of(args))
                return _fn(*args)
            return charged
        return getattr(self, found) if isinstance(found, str) else found

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == 'storage'
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)):
            raise UnsafeCheckpointError('a persistent id that is not a torch storage')
        return self.read_storage(pid[1].dtype, pid[2], as_int(pid[4], 'storage size'))

    def _rebuild_tensor(self, storage, storage_offset, size, stride, requires_grad=False,
                        backward_hooks=None, metadata=None):
        if not isinstance(storage, Storage):
            raise UnsafeCheckpointError('a tensor rebuilt from something other than a storage')
        if backward_hooks or metadata:
            raise UnsafeCheckpointError('a tensor with backward hooks or Python attributes')
        size, stride = int_tuple(size, 'size'), int_tuple(stride, 'stride')
        if len(size) != len(stride):
            raise UnsafeCheckpointError('a tensor whose size and stride differ in length')
        offset = as_int(storage_offset, 'storage offset')
        check_view(size, stride, offset, storage.data.numel())
        self.view_bytes += math.prod(size) * storage.data.element_size()
        self.tensors += 1
        if self.tensors > MAX_TENSORS:
            raise UnsafeCheckpointError(f'the pickle builds more than {MAX_TENSORS} tensors')
        tensor = storage.data.as_strided(size, stride, offset)
        if requires_grad is True and (tensor.is_floating_point() or tensor.is_complex()):
            tensor.requires_grad_()
        return tensor

    def _rebuild_parameter(self, data, requires_grad=True, backward_hooks=None):
        if not isinstance(data, torch.Tensor) or backward_hooks:
            raise UnsafeCheckpointError('a parameter of something other than a tensor')
        grad = requires_grad is True and (data.is_floating_point() or data.is_complex())
        return torch.nn.Parameter(data.detach(), requires_grad=grad)


_PRIMITIVES = (str, bytes, int, float, bool, type(None), complex, torch.dtype, torch.device,
               np.generic)


def materialize(root, charge_bytes):
    """Plain Python and numpy objects for the unpickled tree: records built from
    checked values, containers copied, cycles and deep nesting refused."""
    done, active = {}, set()

    def visit(obj, depth):
        if isinstance(obj, (torch.Tensor,) + _PRIMITIVES) and not isinstance(obj, torch.Size):
            return obj
        key = id(obj)
        if key in done:
            return done[key]
        if key in active:
            raise UnsafeCheckpointError('the pickle holds a reference cycle; '
                                        'checkpoints are trees of data')
        if depth > MAX_DEPTH:
            raise UnsafeCheckpointError(f'the pickle nests deeper than {MAX_DEPTH} levels')
        active.add(key)
        out = build(obj, depth + 1)
        active.discard(key)
        done[key] = out
        return out

    def build(obj, depth):
        if isinstance(obj, torch.Size):
            return torch.Size(int_tuple(tuple(obj), 'Size'))
        if isinstance(obj, dict):
            out = OrderedDict() if isinstance(obj, OrderedDict) else {}
            for k, v in obj.items():
                if not isinstance(k, (str, int, float, bool, type(None), tuple)):
                    raise UnsafeCheckpointError(f'a dict key of type {type(k).__name__}')
                out[visit(k, depth)] = visit(v, depth)
            if hasattr(obj, '_metadata'):
                out._metadata = visit(obj._metadata, depth)
            return out
        if isinstance(obj, (list, tuple, set, frozenset)):
            return type(obj)(visit(v, depth) for v in obj)
        if isinstance(obj, _ArrayRecord):
            array = obj.array()
            charge_bytes(array.nbytes)
            return array
        if isinstance(obj, _HistoryBufferRecord):
            return _history_buffer(visit(obj.state, depth))
        if isinstance(obj, _NamespaceRecord):
            state = visit(obj.state, depth)
            if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
                raise UnsafeCheckpointError('an argparse.Namespace without a dict of names')
            return Namespace(**state)
        if isinstance(obj, _StatisticsMethod):
            return obj.name
        raise UnsafeCheckpointError(f'the pickle builds a {type(obj).__name__}, which is not data')

    return visit(root, 0)


def _history_buffer(state):
    try:
        from mmengine.logging import HistoryBuffer
    except ImportError:
        raise UnsafeCheckpointError('the checkpoint holds an MMEngine HistoryBuffer; '
                                    'install mmengine to read it') from None
    known = {'max_length', '_log_history', '_count_history', 'statistics_methods'}
    if not isinstance(state, dict) or not set(state) <= known:
        raise UnsafeCheckpointError('a HistoryBuffer whose state is not MMEngine\'s')
    log, count = state.get('_log_history'), state.get('_count_history')
    max_length = as_int(state.get('max_length', 1000000), 'HistoryBuffer.max_length', 1)
    for name, values in (('log', log), ('count', count)):
        if not isinstance(values, np.ndarray) or values.ndim != 1:
            raise UnsafeCheckpointError(f'HistoryBuffer {name} history is not a 1-D array')
    if len(log) != len(count):
        raise UnsafeCheckpointError('HistoryBuffer histories of different lengths')
    return HistoryBuffer(log, count, max_length)
