"""Property-based fuzzing of the one checkpoint reader (``load_file``) from GENUINE files.

Two genuine seeds are built once per module: an MMEngine-style checkpoint of a tiny
GFNetH (state dict, message hub, AdamW state; ``torch.save``) and the same weights as a
safetensors file. Hypothesis mutates them (pickle opcodes, zip records, safetensors
headers) and every mutated file goes through ``load_file`` in a forked child
(``isolation.run_isolated``). Every outcome must be a clean load or a clean refusal
(one of our error classes, one line), never a signal or a hang, within the documented
bound: a few seconds, at most 256 MiB + 3x the file's size in peak memory growth.

The run is bounded and deterministic (``derandomize=True``, no example database, no
shrinking): ``FUZZ_EXAMPLES=<n>`` changes the number of cases per strategy and
``FUZZ_SHRINK=1`` turns shrinking on to minimise a failure. ``pytest -s`` prints the
outcome counts of each strategy; ``[wrapped X]`` marks refusals where ``load_file`` turned
an exception ``X`` from the parsers (zipfile, pickle, json) into UnreadableCheckpointError.

Below the fuzz run: reproductions of what reviewing the reader's admitted callables
found (``xfail(strict=True)``: they fail until the reader is fixed).
"""
import functools
import io
import json
import os
import pickle
import pickletools
import re
import struct
import zipfile
from collections import Counter

import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import crafted
from gfnet_dense import GFNetH
from gfnet_dense.checkpoints import load_file
from isolation import run_isolated

TINY_H = dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1], layer_scale_init=1e-2)
BASE_MIB = 256          # the documented bound: 256 MiB + 3x the file's size
MAX_SECONDS = 15
CLEAN_ERRORS = {'UnsafeCheckpointError', 'UnreadableCheckpointError', 'CheckpointMismatchError'}
EXAMPLES = int(os.environ.get('FUZZ_EXAMPLES', '120'))
PHASES = [Phase.explicit, Phase.generate] + ([Phase.shrink] if os.environ.get('FUZZ_SHRINK')
                                             else [])
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                phases=PHASES, print_blob=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])
# an index into whatever list a mutation picks from (taken modulo its length)
INDEX = st.integers(0, 1 << 20)


# --------------------------------------------------------------------------- seeds
@functools.lru_cache(maxsize=None)
def _seeds():
    """The genuine files as bytes, and their parsed structure (built once)."""
    import safetensors.torch
    torch.manual_seed(0)
    model = GFNetH(arch=TINY_H)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for param in model.parameters():
        param.grad = torch.full_like(param, 0.01)
    optimizer.step()
    state = model.state_dict()
    checkpoint = {'meta': {'epoch': 1, 'iter': 3, 'seed': 0, 'mmengine_version': '0.10.7',
                           'experiment_name': 'fuzz'},
                  'state_dict': state, 'message_hub': crafted.genuine_message_hub(),
                  'optimizer': optimizer.state_dict()}
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    zip_bytes = buffer.getvalue()
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
        records = [(info.filename, archive.read(info)) for info in archive.infolist()]
    pkl_name, pkl = next((n, d) for n, d in records if n.endswith('/data.pkl'))
    ops = [(op.name, arg, pkl[pos:end])
           for (op, arg, pos), end in _with_ends(pickletools.genops(pkl), len(pkl))]
    st_bytes = safetensors.torch.save({k: v.contiguous() for k, v in state.items()})
    header_length = int.from_bytes(st_bytes[:8], 'little')
    return {'zip': zip_bytes, 'records': records, 'pkl_name': pkl_name, 'ops': ops,
            'zip_fields': _zip_fields(zip_bytes),
            'safetensors': st_bytes,
            'st_header': json.loads(st_bytes[8:8 + header_length]),
            'st_data': st_bytes[8 + header_length:]}


def _with_ends(ops, total):
    ops = list(ops)
    ends = [pos for _, _, pos in ops[1:]] + [total]
    return zip(ops, ends)


# ------------------------------------------------------------------------ outcomes
COUNTS = {name: Counter() for name in ('pickle_opcodes', 'zip_records', 'safetensors_headers')}


def _label(outcome) -> str:
    if outcome.kind != 'refused':
        return outcome.kind
    wrapped = re.search(r"cannot read checkpoint .*? \((\w+): ", outcome.message)
    # load_file wraps any other exception as UnreadableCheckpointError: say which one
    return outcome.error + (f' [wrapped {wrapped.group(1)}]' if wrapped else '')


def _check(strategy: str, data: bytes, tmp_dir: str, mutations) -> None:
    path = os.path.join(tmp_dir, f'{strategy}.bin')
    with open(path, 'wb') as f:
        f.write(data)
    outcome = run_isolated(lambda: load_file(path), timeout_s=20)
    COUNTS[strategy][_label(outcome)] += 1
    size_mib = len(data) / 2 ** 20
    where = f'{strategy} mutations {mutations!r}: {outcome}'
    assert outcome.kind in ('ok', 'refused'), where
    if outcome.kind == 'refused':
        assert outcome.error in CLEAN_ERRORS, where
        assert '\n' not in outcome.message and len(outcome.message) < 1000, where
    assert outcome.growth_mib < BASE_MIB + 3 * size_mib, where
    assert outcome.seconds < MAX_SECONDS, where


def _summary(strategy: str) -> None:
    counts = COUNTS[strategy]
    shown = ', '.join(f'{k}: {v}' for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    print(f'\n[fuzz {strategy}] {sum(counts.values())} cases: {shown}')


# ------------------------------------------------------------ 1. pickle opcodes
_INT_OPS = {'BININT', 'BININT1', 'BININT2', 'LONG1', 'LONG4', 'INT', 'LONG'}
_STR_OPS = {'BINUNICODE', 'SHORT_BINUNICODE', 'BINUNICODE8', 'UNICODE'}
_MEMO_OPS = {'BINPUT', 'LONG_BINPUT', 'PUT', 'BINGET', 'LONG_BINGET', 'GET'}

ADMITTED_GLOBALS = [
    ('collections', 'OrderedDict'), ('torch._utils', '_rebuild_tensor_v2'),
    ('torch._utils', '_rebuild_parameter'), ('torch', 'Size'), ('torch', 'device'),
    ('_codecs', 'encode'), ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('mmengine.logging.history_buffer', 'HistoryBuffer'), ('argparse', 'Namespace'),
    ('torch', 'FloatStorage'), ('torch', 'BoolStorage'), ('torch', 'ComplexDoubleStorage'),
    ('torch', 'UntypedStorage'), ('torch', 'HalfStorage'), ('torch', 'float32'),
    ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', 'scalar'),
    ('builtins', 'set'), ('__builtin__', 'frozenset'), ('builtins', 'complex'),
    ('builtins', 'getattr')]
REFUSED_GLOBALS = [
    ('builtins', 'eval'), ('os', 'system'), ('torch', 'load'), ('numpy', 'frombuffer'),
    ('torch._utils', '_rebuild_tensor'), ('torch._utils', '_rebuild_sparse_tensor'),
    ('torch._tensor', '_rebuild_from_type_v2'), ('collections', 'defaultdict'),
    ('builtins', 'bytearray'), ('builtins', 'list'), ('numpy', 'memmap'),
    ('mmengine.logging.history_buffer', 'HistoryBuffer.__init__'), ('torch', 'Storage'),
    ('numpy.core.multiarray', '_reconstruct\x00'), ('', ''), ('copyreg', '_reconstructor')]
STRINGS = ['V8', 'O', 'f8,O', 'f8', '<f4', 'i8', 'U10', 'S4', 'M8', '?', 'c16', 'storage', 'cpu',
           'cuda', 'meta', 'cuda:0', '0', '999999', 'data.pkl', '../0', 'mean', '__init__',
           '__class__', 'latin1', 'utf-7', '_log_history', 'max_length', '', 'x' * 300]
SPECIAL_INTS = [0, 1, -1, 2, 3, 7, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, -2 ** 31,
                2 ** 32, 2 ** 48, 2 ** 48 + 1, 2 ** 62, 2 ** 63, -2 ** 63, 2 ** 64, 10 ** 30]
INSERTABLE = ['BUILD', 'REDUCE', 'APPEND', 'APPENDS', 'SETITEM', 'SETITEMS', 'MARK', 'TUPLE',
              'TUPLE1', 'TUPLE2', 'POP', 'POP_MARK', 'DUP', 'EMPTY_DICT', 'EMPTY_LIST',
              'EMPTY_TUPLE', 'EMPTY_SET', 'ADDITEMS', 'FROZENSET', 'NONE', 'NEWTRUE',
              'BINPERSID', 'STOP', 'NEWOBJ', 'NEWOBJ_EX', 'STACK_GLOBAL', 'MEMOIZE', 'OBJ']
_CODES = {op.name: op.code.encode('latin1') for op in pickletools.opcodes}


def _encode_int(value: int) -> bytes:
    if 0 <= value < 256:
        return pickle.BININT1 + bytes([value])
    if 0 <= value < 65536:
        return pickle.BININT2 + value.to_bytes(2, 'little')
    if -2 ** 31 <= value < 2 ** 31:
        return pickle.BININT + value.to_bytes(4, 'little', signed=True)
    raw = pickle.encode_long(value)
    return (pickle.LONG1 + bytes([len(raw)]) if len(raw) < 256
            else pickle.LONG4 + len(raw).to_bytes(4, 'little')) + raw


def _encode_str(value: str) -> bytes:
    raw = value.encode('utf-8', 'surrogatepass')
    return pickle.BINUNICODE + len(raw).to_bytes(4, 'little') + raw


def _encode_memo(name: str, index: int) -> bytes:
    get = 'GET' in name
    index = max(index, 0) % (1 << 32)
    if index < 256:
        return (pickle.BINGET if get else pickle.BINPUT) + bytes([index])
    return (pickle.LONG_BINGET if get else pickle.LONG_BINPUT) + index.to_bytes(4, 'little')


PICKLE_MUTATION = st.one_of(
    st.tuples(st.just('int'), INDEX, st.one_of(st.sampled_from(SPECIAL_INTS),
                                               st.integers(-2 ** 70, 2 ** 70))),
    st.tuples(st.just('str'), INDEX, st.one_of(st.sampled_from(STRINGS), st.text(max_size=8))),
    st.tuples(st.just('global'), INDEX, st.sampled_from(ADMITTED_GLOBALS + REFUSED_GLOBALS)),
    st.tuples(st.just('float'), INDEX, st.sampled_from([float('nan'), float('inf'), -0.0,
                                                        1e308, -1e-320])),
    st.tuples(st.just('memo'), INDEX, st.sampled_from([0, 1, 2, 255, 256, 2 ** 31, 2 ** 32 - 1])),
    st.tuples(st.just('swap'), INDEX, INDEX),
    st.tuples(st.just('duplicate'), INDEX),
    st.tuples(st.just('delete'), INDEX),
    st.tuples(st.just('insert'), INDEX, st.sampled_from(INSERTABLE)),
    st.tuples(st.just('flip'), INDEX, st.integers(1, 255)),
)


def _pick(ops, families, index):
    """The position in ``ops`` of the ``index``-th op (mod count) of ``families``."""
    found = [i for i, op in enumerate(ops) if op[0] in families]
    return found[index % len(found)] if found else None


def mutate_pickle(ops, mutations) -> bytes:
    ops = list(ops)
    for kind, *args in mutations:
        if kind in ('int', 'str', 'global', 'float', 'memo'):
            families = {'int': _INT_OPS, 'str': _STR_OPS, 'global': {'GLOBAL'},
                        'float': {'BINFLOAT'}, 'memo': _MEMO_OPS}[kind]
            at = _pick(ops, families, args[0])
            if at is None:
                continue
            name, value = ops[at][0], args[1]
            raw = {'int': lambda: _encode_int(value), 'str': lambda: _encode_str(value),
                   'global': lambda: b'c' + '\n'.join(value).encode('utf-8') + b'\n',
                   'float': lambda: pickle.BINFLOAT + struct.pack('>d', value),
                   'memo': lambda: _encode_memo(name, value)}[kind]()
            ops[at] = (name, value, raw)
        elif kind == 'swap':
            i, j = args[0] % len(ops), args[1] % len(ops)
            ops[i], ops[j] = ops[j], ops[i]
        elif kind == 'duplicate':
            i = args[0] % len(ops)
            ops.insert(i, ops[i])
        elif kind == 'delete' and len(ops) > 1:
            del ops[args[0] % len(ops)]
        elif kind == 'insert':
            ops.insert(args[0] % (len(ops) + 1), (args[1], None, _CODES[args[1]]))
        elif kind == 'flip':
            i = args[0] % len(ops)
            name, arg, raw = ops[i]
            raw = bytearray(raw)
            raw[args[0] % len(raw)] ^= args[1]
            ops[i] = (name, arg, bytes(raw))
    return b''.join(raw for _, _, raw in ops)


def _torch_zip(records, pkl_name, pkl: bytes) -> bytes:
    """The genuine records in their order, ``data.pkl`` replaced, stored uncompressed."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_STORED) as archive:
        for name, data in records:
            archive.writestr(name, pkl if name == pkl_name else data)
    return out.getvalue()


def test_fuzz_pickle_opcodes(tmp_path):
    """Mutated opcodes of a genuine checkpoint's pickle, re-zipped with its own records."""
    seeds = _seeds()

    @FUZZ
    @given(st.lists(PICKLE_MUTATION, min_size=1, max_size=3))
    def run(mutations):
        pkl = mutate_pickle(seeds['ops'], mutations)
        _check('pickle_opcodes', _torch_zip(seeds['records'], seeds['pkl_name'], pkl),
               str(tmp_path), mutations)

    try:
        run()
    finally:
        _summary('pickle_opcodes')


def test_unmutated_seeds_load(tmp_path):
    """The harness: the genuine seeds (and the re-zipped pickle) load as 'ok'."""
    seeds = _seeds()
    rezipped = _torch_zip(seeds['records'], seeds['pkl_name'], mutate_pickle(seeds['ops'], []))
    for name, data in (('zip', seeds['zip']), ('rezipped', rezipped),
                       ('safetensors', seeds['safetensors'])):
        path = str(tmp_path / name)
        with open(path, 'wb') as f:
            f.write(data)
        outcome = run_isolated(lambda: load_file(path), timeout_s=20)
        assert outcome.kind == 'ok', (name, outcome)


# --------------------------------------------------------------- 2. zip records
_LOCAL_FIELDS = [(4, 2), (6, 2), (8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2)]
_CENTRAL_FIELDS = [(6, 2), (8, 2), (10, 2), (16, 4), (20, 4), (24, 4), (28, 2), (30, 2), (32, 2),
                   (34, 2), (42, 4)]
_EOCD_FIELDS = [(4, 2), (6, 2), (8, 2), (10, 2), (12, 4), (16, 4), (20, 2)]


def _zip_fields(data: bytes):
    """(start, width) of every header field of the zip: local headers, central directory
    entries and the end-of-directory record."""
    eocd = data.rfind(b'PK\x05\x06')
    count = int.from_bytes(data[eocd + 10:eocd + 12], 'little')
    pos = int.from_bytes(data[eocd + 16:eocd + 20], 'little')
    fields = {'local': [], 'central': [], 'eocd': [(eocd + o, w) for o, w in _EOCD_FIELDS]}
    for _ in range(count):
        assert data[pos:pos + 4] == b'PK\x01\x02'
        fields['central'] += [(pos + o, w) for o, w in _CENTRAL_FIELDS]
        local = int.from_bytes(data[pos + 42:pos + 46], 'little')
        fields['local'] += [(local + o, w) for o, w in _LOCAL_FIELDS]
        lengths = [int.from_bytes(data[pos + o:pos + o + 2], 'little') for o in (28, 30, 32)]
        pos += 46 + sum(lengths)
    fields['headers'] = fields['local'] + fields['central'] + fields['eocd']
    return fields


ZIP_MUTATION = st.one_of(
    # set a header field: sizes, offsets, counts, method, name and extra lengths, CRC
    st.tuples(st.just('field'), st.sampled_from(['local', 'central', 'eocd']), INDEX,
              st.one_of(st.sampled_from(['zero', 'one', 'max', '+1', '-1', 'x2', '/2']),
                        st.integers(0, 2 ** 32 - 1))),
    # flip a byte in a header, or anywhere
    st.tuples(st.just('flip'), st.sampled_from(['headers', 'any']), INDEX, st.integers(1, 255)),
    st.tuples(st.just('insert'), INDEX, st.binary(min_size=1, max_size=64)),
    st.tuples(st.just('delete'), INDEX, st.integers(1, 64)),
    st.tuples(st.just('truncate'), INDEX),
)


def mutate_zip(data: bytes, fields, mutations) -> bytes:
    data = bytearray(data)
    for kind, *args in mutations:
        if kind == 'field':
            where, index, value = args
            start, width = fields[where][index % len(fields[where])]
            if start + width > len(data):
                continue
            old = int.from_bytes(data[start:start + width], 'little')
            top = (1 << (8 * width)) - 1
            new = {'zero': 0, 'one': 1, 'max': top, '+1': old + 1, '-1': old - 1, 'x2': old * 2,
                   '/2': old // 2}.get(value, value) if isinstance(value, str) else value
            data[start:start + width] = (new & top).to_bytes(width, 'little')
        elif kind == 'flip':
            where, index, xor = args
            pos = (fields['headers'][index % len(fields['headers'])][0] + index % 4
                   if where == 'headers' else index)
            if data:
                data[pos % len(data)] ^= xor
        elif kind == 'insert':
            at = args[0] % (len(data) + 1)
            data[at:at] = args[1]
        elif kind == 'delete' and data:
            at = args[0] % len(data)
            del data[at:at + args[1]]
        elif kind == 'truncate':
            del data[args[0] % (len(data) + 1):]
    return bytes(data)


def test_fuzz_zip_records(tmp_path):
    """Flipped, inserted, deleted and truncated bytes and changed header fields (record
    sizes, offsets, counts) of a genuine torch zip file."""
    seeds = _seeds()

    @FUZZ
    @given(st.lists(ZIP_MUTATION, min_size=1, max_size=3))
    def run(mutations):
        _check('zip_records', mutate_zip(seeds['zip'], seeds['zip_fields'], mutations),
               str(tmp_path), mutations)

    try:
        run()
    finally:
        _summary('zip_records')


# --------------------------------------------------------- 3. safetensors headers
_HUGE = [2 ** 31, 2 ** 32, 2 ** 48, 2 ** 53 + 1, 2 ** 63, 2 ** 64, 10 ** 30]
DTYPES = ['F32', 'F64', 'F16', 'BF16', 'I64', 'I8', 'U8', 'BOOL', 'U16', 'C64', 'F8_E4M3', 'f32',
          '', 'O', 7, None, ['F32'], {'F32': 1}]
SHAPE = st.one_of(
    st.lists(st.sampled_from([0, 1, 2, 3, 8, 56, 29, -1, 2 ** 31, 2 ** 48, 2 ** 49] + _HUGE),
             max_size=4),
    st.sampled_from([[1] * 40, [1.5], [True], ['1'], None, 'x', {}, [[2]], [2 ** 24, 2 ** 24, 0],
                     [0, 2 ** 60]]))
OFFSET = st.one_of(st.integers(-2, 2 ** 20), st.sampled_from(_HUGE + [-1, 1.0, '0', None, True]))
HEADER_MUTATION = st.one_of(
    st.tuples(st.just('dtype'), INDEX, st.sampled_from(DTYPES)),
    st.tuples(st.just('shape'), INDEX, SHAPE),
    st.tuples(st.just('offsets'), INDEX, st.one_of(st.lists(OFFSET, min_size=0, max_size=3),
                                                    st.sampled_from([None, 'x', {}]))),
    st.tuples(st.just('shift'), INDEX, st.sampled_from([-4, -1, 1, 4, 1 << 20])),
    st.tuples(st.just('overlap'), INDEX, INDEX),
    st.tuples(st.just('swap_offsets'), INDEX),
    st.tuples(st.just('drop_field'), INDEX, st.sampled_from(['dtype', 'shape', 'data_offsets'])),
    st.tuples(st.just('drop_entry'), INDEX),
    st.tuples(st.just('entry'), st.sampled_from(['x', '', '__metadata__', 'a' * 300, '\x1b[2J']),
              st.sampled_from([None, 1, 'x', [], {'dtype': 'F32', 'shape': [0],
                                                  'data_offsets': [0, 0]}])),
    st.tuples(st.just('metadata'), st.sampled_from([None, 1, 'x', [], {'a': 1}, {'a': 'b'}])),
    st.tuples(st.just('header'), st.sampled_from([[], 'x', 1, None, {}, [[[]]]])),
)
BYTES_MUTATION = st.one_of(
    st.tuples(st.just('prefix'), st.one_of(
        st.sampled_from(['0', '1', '2', '-1', '+1', 'size-8', 'size-7', 'size', '64MiB+1',
                         'max']),
        st.integers(0, 2 ** 64 - 1))),
    st.tuples(st.just('flip'), st.sampled_from(['header', 'any']), INDEX, st.integers(1, 255)),
    st.tuples(st.just('truncate'), INDEX),
    st.tuples(st.just('pad'), st.integers(1, 64)),
)


def mutate_header(header: dict, mutations):
    header = json.loads(json.dumps(header))
    names = sorted(k for k in header if k != '__metadata__')
    for kind, *args in mutations:
        if not isinstance(header, dict):
            break
        indexed = kind not in ('entry', 'metadata', 'header') and names
        entry = header.get(names[args[0] % len(names)]) if indexed else None
        if kind in ('dtype', 'shape') and isinstance(entry, dict):
            entry[kind] = args[1]
        elif kind == 'offsets' and isinstance(entry, dict):
            entry['data_offsets'] = args[1]
        elif kind == 'shift' and isinstance(entry, dict):
            offsets = entry.get('data_offsets')
            if isinstance(offsets, list) and offsets and isinstance(offsets[-1], int):
                offsets[args[0] % len(offsets)] += args[1]
        elif kind == 'overlap' and isinstance(entry, dict):
            other = header.get(names[args[1] % len(names)])
            if isinstance(other, dict):
                entry['data_offsets'] = other.get('data_offsets')
        elif kind == 'swap_offsets' and isinstance(entry, dict):
            offsets = entry.get('data_offsets')
            if isinstance(offsets, list):
                offsets.reverse()
        elif kind == 'drop_field' and isinstance(entry, dict):
            entry.pop(args[1], None)
        elif kind == 'drop_entry' and names:
            header.pop(names[args[0] % len(names)], None)
        elif kind == 'entry':
            header[args[0]] = args[1]
        elif kind == 'metadata':
            header['__metadata__'] = args[0]
        elif kind == 'header':
            header = args[0]
    return header


def mutate_safetensors(header, data: bytes, mutations) -> bytes:
    text = json.dumps(header, separators=(',', ':')).encode('utf-8')
    blob = bytearray(len(text).to_bytes(8, 'little') + text + data)
    for kind, *args in mutations:
        if kind == 'prefix':
            value = args[0]
            if isinstance(value, str):
                old = int.from_bytes(blob[:8], 'little')
                value = {'0': 0, '1': 1, '2': 2, '-1': old - 1, '+1': old + 1,
                         'size-8': len(blob) - 8, 'size-7': len(blob) - 7, 'size': len(blob),
                         '64MiB+1': (64 << 20) + 1, 'max': 2 ** 64 - 1}[value]
            blob[:8] = (value % 2 ** 64).to_bytes(8, 'little')
        elif kind == 'flip' and blob:
            where, index, xor = args
            span = 8 + len(text) if where == 'header' else len(blob)
            blob[index % min(span, len(blob))] ^= xor
        elif kind == 'truncate':
            del blob[args[0] % (len(blob) + 1):]
        elif kind == 'pad':  # header padded with spaces (valid when the prefix follows)
            length = int.from_bytes(blob[:8], 'little') + args[0]
            blob[8 + len(text):8 + len(text)] = b' ' * args[0]
            blob[:8] = length.to_bytes(8, 'little')
    return bytes(blob)


def test_fuzz_safetensors_headers(tmp_path):
    """Mutated JSON headers (dtypes, shapes, offsets, overlaps, huge numbers), header
    length prefixes and raw bytes of a genuine safetensors file."""
    seeds = _seeds()

    @FUZZ
    @given(st.lists(HEADER_MUTATION, max_size=3), st.lists(BYTES_MUTATION, max_size=2))
    def run(header_mutations, byte_mutations):
        header = mutate_header(seeds['st_header'], header_mutations)
        data = mutate_safetensors(header, seeds['st_data'], byte_mutations)
        _check('safetensors_headers', data, str(tmp_path), (header_mutations, byte_mutations))

    try:
        run()
    finally:
        _summary('safetensors_headers')


# ------------------------------------------------------ reproductions (review)
# Found by reading the reader's admitted callables, not by the mutations above (which
# start from genuine files and never assemble these call shapes); each was a real bug,
# now refused (numpy.ndarray is a name, never a callable; set / frozenset / OrderedDict /
# torch.Size take lists or tuples and are charged per item; strings and arrays per byte;
# the zip directory is bounded by its byte size).
_global = crafted._global  # GLOBAL opcode bytes, as the hand-crafted files write them


def _str(text: str) -> bytes:
    return pickle.BINUNICODE + len(text).to_bytes(4, 'little') + text.encode()


def _ndarray(numel: int, dtype: str) -> bytes:
    """``numpy.ndarray((numel,), dtype)``: the admitted global called as a constructor."""
    return (_global('numpy', 'ndarray') + _encode_int(numel) + pickle.TUPLE1 + _str(dtype)
            + pickle.TUPLE2 + pickle.REDUCE)


def _call(module: str, name: str, arg: bytes) -> bytes:
    return _global(module, name) + arg + pickle.TUPLE1 + pickle.REDUCE


def _byte_tensor(numel: int) -> bytes:
    """A genuine ``_rebuild_tensor_v2`` of a uint8 storage '0' of ``numel`` elements."""
    persid = (pickle.MARK + _str('storage') + _global('torch', 'ByteStorage') + _str('0')
              + _str('cpu') + _encode_int(numel) + pickle.TUPLE + pickle.BINPERSID)
    return (_global('torch._utils', '_rebuild_tensor_v2') + pickle.MARK + persid
            + _encode_int(0) + _encode_int(numel) + pickle.TUPLE1 + _encode_int(1)
            + pickle.TUPLE1 + pickle.NEWFALSE + _global('collections', 'OrderedDict')
            + pickle.EMPTY_TUPLE + pickle.REDUCE + pickle.TUPLE + pickle.REDUCE)


def _zip_with_extra_central_entries(extra: int) -> bytes:
    """A genuine torch zip whose central directory holds ``extra`` more (nameless) entries
    than its end-of-directory record announces; zipfile walks the directory by its size."""
    buffer = io.BytesIO()
    torch.save({'a': torch.zeros(2)}, buffer)
    data = buffer.getvalue()
    eocd = data.rfind(b'PK\x05\x06')
    cd_size, cd_offset = struct.unpack('<II', data[eocd + 12:eocd + 20])
    entry = b'PK\x01\x02' + struct.pack('<6H3I5H2I', 20, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                        0, 0)
    directory = data[cd_offset:cd_offset + cd_size] + entry * extra
    return (data[:cd_offset] + directory + data[eocd:eocd + 12]
            + struct.pack('<II', len(directory), cd_offset) + data[eocd + 20:])


def _pickled(body: bytes, records=None) -> bytes:
    """A torch zip file's bytes around the protocol-2 pickle ``body``."""
    return crafted.write_torch_zip(io.BytesIO(), pickle.PROTO + b'\x02' + body + pickle.STOP,
                                   records).getvalue()


def _memo_repeated(make: bytes, call: bytes, times: int) -> bytes:
    """``make`` memoized once, then ``call`` applied to it ``times`` times."""
    return (pickle.EMPTY_LIST + make + pickle.BINPUT + b'\x01' + pickle.APPEND
            + (call + pickle.BINGET + b'\x01' + pickle.TUPLE1 + pickle.REDUCE + pickle.APPEND)
            * times)


REPRODUCTIONS = {
    # one list of 100k ints, frozenset() of it 50k times: 5e9 items from 350k opcodes
    'memo_repeated_frozenset': lambda: _pickled(_memo_repeated(
        pickle.EMPTY_LIST + pickle.MARK + pickle.NONE * 100_000 + pickle.APPENDS,
        _global('builtins', 'frozenset'), 50_000)),
    # one 1 MiB string, _codecs.encode() of it 10k times: 10 GiB of bytes
    'memo_repeated_latin1': lambda: _pickled(_memo_repeated(
        _str('x' * (1 << 20)), _global('_codecs', 'encode'), 10_000)),
    # ~400 bytes: numpy fills an object array with None, 512 MiB touched (under
    # isolation's 4 GiB RLIMIT_DATA; without a limit it takes whatever the count says)
    'ndarray_object_fill': lambda: _pickled(_ndarray(1 << 26, 'O')),
    # ~400 bytes: frozenset() walks 2 GiB of (untouched) uninitialised bytes, ~100 s;
    # repeated through the memo, without end
    'ndarray_iterated_hang': lambda: _pickled(_call('builtins', 'frozenset',
                                                     _ndarray(2 ** 31 - 1, 'u1'))),
    # set() of an uninitialised uint64 array loads 'ok': heap contents (pointers) come
    # back as checkpoint data
    'ndarray_uninitialised_memory': lambda: _pickled(_call('builtins', 'set',
                                                            _ndarray(512, 'u8'))),
    # a 512 KiB uint8 storage: set(tensor) makes 2**19 0-dim tensors, ~380 MiB (bound
    # 258); each further set() over the memoised tensor adds as much (a 1 MiB storage
    # and 4 sets: 2.8 GiB, 12 s)
    'tensor_iterated_into_objects': lambda: _pickled(
        _call('builtins', 'set', _byte_tensor(1 << 19)), {'0': bytes(1 << 19)}),
    # 150000 central-directory entries behind an end record announcing 6: loads 'ok'
    # past MAX_ZIP_RECORDS (100000); at 2.2M entries (97 MiB) it took 790 MiB (bound
    # 546) and 26 s
    'zip_directory_beyond_announced_count': lambda: _zip_with_extra_central_entries(150_000),
}


@pytest.mark.parametrize('name', sorted(REPRODUCTIONS))
def test_reproduction_is_refused_within_bounds(name, tmp_path):
    data = REPRODUCTIONS[name]()
    path = str(tmp_path / 'repro.pth')
    with open(path, 'wb') as f:
        f.write(data)
    outcome = run_isolated(lambda: load_file(path), timeout_s=5)
    assert outcome.kind == 'refused' and outcome.error in CLEAN_ERRORS, outcome
    assert outcome.growth_mib < BASE_MIB + 3 * len(data) / 2 ** 20, outcome
    assert outcome.seconds < 5, outcome
