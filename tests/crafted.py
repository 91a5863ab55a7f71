"""Checkpoint files that run code when unpickled in full: the attacks the loaders must refuse.

Each payload writes ``sentinel`` when it runs. ``write_crafted`` puts one into an
otherwise genuine MMEngine-style checkpoint of ``state_dict``.
"""
import argparse
import os

import torch


class Call:
    """Pickles as ``fn(*args)``: what a malicious file asks the unpickler to do."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args

    def __call__(self, *args):  # pickle wants the callable of a reduce to look callable
        raise AssertionError('never called here')


def _write_code(sentinel: str) -> str:
    return f'open({sentinel!r}, "w").write("code ran")'


def numpy_runstring(sentinel: str):
    """A numpy callable that executes a string (``runstring`` is ``exec``)."""
    from numpy.testing._private.utils import runstring
    return Call(runstring, _write_code(sentinel), {})


def getattr_chain_to_eval(sentinel: str):
    """``getattr`` from an admitted class to ``eval``:
    ``Namespace.__init__.__globals__['__builtins__']['eval'](code)``."""
    init = Call(getattr, argparse.Namespace, '__init__')
    module_globals = Call(getattr, init, '__globals__')
    builtins_dict = Call(Call(getattr, module_globals, 'get'), '__builtins__')
    evaluate = Call(Call(getattr, builtins_dict, 'get'), 'eval')
    return Call(evaluate, _write_code(sentinel))


def torch_save_call(sentinel: str):
    """A torch callable that is no tensor or storage constructor: ``torch.save`` writes a file."""
    return Call(torch.save, {'code': 'ran'}, sentinel)


def history_buffer_getattr(sentinel: str):
    """``getattr`` on MMEngine's HistoryBuffer for something other than its statistics."""
    from mmengine.logging import HistoryBuffer
    init = Call(getattr, HistoryBuffer, '__init__')
    module_globals = Call(getattr, init, '__globals__')
    builtins_dict = Call(Call(getattr, module_globals, 'get'), '__builtins__')
    return Call(Call(Call(getattr, builtins_dict, 'get'), 'exec'), _write_code(sentinel))


PAYLOADS = {
    'numpy_runstring': numpy_runstring,
    'getattr_chain_to_eval': getattr_chain_to_eval,
    'torch_save_call': torch_save_call,
    'history_buffer_getattr': history_buffer_getattr,
}
# where the payload sits in the file
PLACES = ('top_level', 'message_hub', 'optimizer_state')


def genuine_message_hub():
    """What MMEngine's MessageHub.state_dict() holds: HistoryBuffers with numpy arrays."""
    from mmengine.logging import HistoryBuffer
    buffer = HistoryBuffer()
    for value in (1.5, 1.25, 1.0):
        buffer.update(value)
    return {'log_scalars': {'train/loss': buffer},
            'runtime_info': {'iter': 3, 'epoch': 0}, 'resumed_keys': {'iter': True}}


def write_crafted(path, state_dict: dict, payload: str, place: str, sentinel: str) -> str:
    """An MMEngine-layout checkpoint of ``state_dict`` carrying ``payload`` at ``place``."""
    evil = PAYLOADS[payload](sentinel)
    hub = genuine_message_hub()
    optimizer = {'state': {0: {'step': torch.tensor(3.0), 'exp_avg': torch.zeros(2)}},
                 'param_groups': [{'lr': 1e-3, 'params': [0]}]}
    checkpoint = {'meta': {'iter': 3, 'epoch': 0}, 'state_dict': state_dict,
                  'message_hub': hub, 'optimizer': optimizer}
    if place == 'top_level':
        checkpoint['meta']['extra'] = evil
    elif place == 'message_hub':
        hub['log_scalars']['train/loss'].__dict__['_log_history'] = evil
    else:
        optimizer['state'][0]['exp_avg'] = evil
    torch.save(checkpoint, path)
    if os.path.exists(sentinel):
        raise AssertionError('writing the crafted file ran its payload')
    return str(path)


# ----------------------------------------------------------------------------------------
# Files that run no code but would describe memory, exhaust the machine or poison weights.
# Each writer takes (path, state_dict) and returns the path; HOSTILE maps a name to
# (writer, a phrase the refusal must contain).
def write_torch_zip(path, pickle_bytes: bytes, records=None, compress=False):
    """A file laid out as torch.save lays it out, around a hand-written pickle. ``path``:
    a path (returned as a string) or a binary file object (returned as given)."""
    import zipfile
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    path = path if hasattr(path, 'write') else str(path)
    with zipfile.ZipFile(path, 'w', method) as archive:
        archive.writestr('archive/data.pkl', pickle_bytes)
        archive.writestr('archive/byteorder', 'little')
        for key, data in (records or {}).items():
            archive.writestr(f'archive/data/{key}', data)
        archive.writestr('archive/version', '3\n')
    return path


def _pickle_with(state_dict, extra) -> bytes:
    """Protocol-2 pickle of ``{'state_dict': <tensor names only>, 'extra': extra}`` as raw
    opcodes: ``extra`` is opcode bytes pushing one object."""
    import pickle as p
    names = b''.join(p.SHORT_BINUNICODE + bytes([len(k)]) + k.encode() + p.NONE
                     for k in list(state_dict)[:3])
    return (p.PROTO + b'\x02' + p.EMPTY_DICT + p.MARK
            + p.SHORT_BINUNICODE + b'\x04meta' + p.EMPTY_DICT + p.MARK + names + p.SETITEMS
            + p.SHORT_BINUNICODE + b'\x05extra' + extra + p.SETITEMS + p.STOP)


def _global(module: str, name: str) -> bytes:
    return b'c' + module.encode() + b'\n' + name.encode() + b'\n'


def void_dtype_object_fields(path, state_dict):
    """numpy dtype('V8') given an object field by __setstate__, then an array whose 8 raw
    bytes numpy would take as a PyObject pointer (the segfault of issue 24)."""
    import pickle as p
    obj_dtype = (_global('numpy', 'dtype') + p.SHORT_BINUNICODE + b'\x02O8' + p.NEWFALSE
                 + p.NEWTRUE + p.TUPLE3 + p.REDUCE)
    void = (_global('numpy', 'dtype') + p.SHORT_BINUNICODE + b'\x02V8' + p.NEWFALSE + p.NEWTRUE
            + p.TUPLE3 + p.REDUCE
            + p.MARK + p.BININT1 + b'\x03' + p.SHORT_BINUNICODE + b'\x01|' + p.NONE
            + p.SHORT_BINUNICODE + b'\x01f' + p.TUPLE1
            + p.EMPTY_DICT + p.SHORT_BINUNICODE + b'\x01f' + obj_dtype + p.BININT1 + b'\x00'
            + p.TUPLE2 + p.SETITEM
            + p.BININT1 + b'\x08' + p.BININT1 + b'\x01' + p.BININT1 + b'\x00' + p.TUPLE + p.BUILD)
    array = (_global('numpy.core.multiarray', '_reconstruct') + _global('numpy', 'ndarray')
             + p.BININT1 + b'\x00' + p.TUPLE1 + p.SHORT_BINBYTES + b'\x01b' + p.TUPLE3 + p.REDUCE
             + p.MARK + p.BININT1 + b'\x01' + p.BININT1 + b'\x01' + p.TUPLE1 + void + p.NEWFALSE
             + p.SHORT_BINBYTES + b'\x08' + b'\x41' * 8 + p.TUPLE + p.BUILD)
    return write_torch_zip(path, _pickle_with(state_dict, array))


def object_array(path, state_dict):
    """A numpy object array: its items are pickles of their own."""
    import numpy as np
    torch.save({'state_dict': state_dict, 'meta': {'a': np.array([1, 'x'], dtype=object)}},
               str(path))
    return str(path)


def legacy_unwritten_storage(path, state_dict):
    """A legacy (non-zip) file: torch reads its storages from offsets it cannot check."""
    torch.save({'state_dict': state_dict}, str(path), _use_new_zipfile_serialization=False)
    return str(path)


def bare_pickle_system(path, state_dict):
    """A bare pickle (no torch container) that calls os.system."""
    import pickle
    with open(path, 'wb') as f:
        pickle.dump(Call(os.system, 'true'), f, protocol=2)
    return str(path)


def expanded_view(path, state_dict):
    """One float on disk viewed as 2**30 (stride 0): 4 bytes, gigabytes in any check."""
    torch.save({'state_dict': dict(state_dict, extra=torch.zeros(1).expand(2 ** 30))}, str(path))
    return str(path)


def _tensor_pickle(numel: int, size: int, stride: int, offset: int = 0) -> bytes:
    import pickle as p
    persid = (p.MARK + p.SHORT_BINUNICODE + b'\x07storage' + _global('torch', 'FloatStorage')
              + p.SHORT_BINUNICODE + b'\x010' + p.SHORT_BINUNICODE + b'\x03cpu'
              + p.BININT + numel.to_bytes(4, 'little') + p.TUPLE + p.BINPERSID)
    return (_global('torch._utils', '_rebuild_tensor_v2') + p.MARK + persid
            + p.BININT + offset.to_bytes(4, 'little') + p.BININT + size.to_bytes(4, 'little')
            + p.TUPLE1 + p.BININT + stride.to_bytes(4, 'little') + p.TUPLE1 + p.NEWFALSE
            + _global('collections', 'OrderedDict') + p.EMPTY_TUPLE + p.REDUCE + p.TUPLE
            + p.REDUCE)


def view_past_storage(path, state_dict):
    """A tensor of 2**20 elements over a storage of 4."""
    return write_torch_zip(path, _pickle_with(state_dict, _tensor_pickle(4, 1 << 20, 1)),
                           {'0': bytes(16)})


def storage_larger_than_record(path, state_dict):
    """The pickle says 2**20 elements; the record holds 16 bytes (uninitialised memory)."""
    return write_torch_zip(path, _pickle_with(state_dict, _tensor_pickle(1 << 20, 4, 1)),
                           {'0': bytes(16)})


def compressed_bomb(path, state_dict):
    """A deflated record that inflates to 64 MiB (torch never compresses)."""
    return write_torch_zip(path, _pickle_with(state_dict, _tensor_pickle(1 << 24, 4, 1)),
                           {'0': bytes(1 << 26)}, compress=True)


def bytearray_call(path, state_dict):
    """builtins.bytearray(2**30): 4 bytes of pickle, a gigabyte of memory."""
    import pickle as p
    call = (_global('__builtin__', 'bytearray') + p.BININT + (1 << 30).to_bytes(4, 'little')
            + p.TUPLE1 + p.REDUCE)
    return write_torch_zip(path, _pickle_with(state_dict, call))


def opcode_flood(path, state_dict):
    """Millions of empty dicts from a few megabytes of opcodes."""
    import pickle as p
    flood = p.EMPTY_LIST + p.MARK + p.EMPTY_DICT * 3_000_000 + p.APPENDS
    return write_torch_zip(path, _pickle_with(state_dict, flood))


def deep_nesting(path, state_dict):
    """Lists nested 100000 deep (recursion in every consumer)."""
    import pickle as p
    nested = p.EMPTY_LIST * 100_000 + p.APPEND * 99_999
    return write_torch_zip(path, _pickle_with(state_dict, nested))


def reference_cycle(path, state_dict):
    """A list that contains itself."""
    import pickle as p
    cycle = p.EMPTY_LIST + p.BINPUT + b'\x07' + p.BINGET + b'\x07' + p.APPEND
    return write_torch_zip(path, _pickle_with(state_dict, cycle))


def nan_complex_filter(path, state_dict):
    """Genuine layout, every complex filter all NaN."""
    poisoned = {k: torch.full_like(v, float('nan')) if k.endswith('complex_weight') else v
                for k, v in state_dict.items()}
    torch.save({'state_dict': poisoned}, str(path))
    return str(path)


def not_a_file_at_all(path, state_dict):
    """An HTML page saved under a checkpoint's name."""
    with open(path, 'w') as f:
        f.write('<!DOCTYPE html><html><body>Not found</body></html>')
    return str(path)


HOSTILE = {
    'void_dtype_object_fields': (void_dtype_object_fields, 'not a numeric dtype'),
    'object_array': (object_array, 'not a numeric dtype'),
    'legacy_unwritten_storage': (legacy_unwritten_storage, 'legacy (non-zip) torch file'),
    'bare_pickle_system': (bare_pickle_system, 'bare pickle'),
    'expanded_view': (expanded_view, 'stride 0'),
    'view_past_storage': (view_past_storage, 'needs element'),
    'storage_larger_than_record': (storage_larger_than_record, 'holds 16 bytes'),
    'compressed_bomb': (compressed_bomb, 'compressed'),
    'bytearray_call': (bytearray_call, 'bytearray'),
    'opcode_flood': (opcode_flood, 'operations'),
    'deep_nesting': (deep_nesting, 'nests deeper'),
    'reference_cycle': (reference_cycle, 'reference cycle'),
    'nan_complex_filter': (nan_complex_filter, 'NaN or Inf'),
    'html_page': (not_a_file_at_all, 'HTML page'),
}
