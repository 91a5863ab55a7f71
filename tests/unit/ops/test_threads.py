"""Threads: the fast-path switch and the device forcing are per thread, autograd
Functions keep their forward's decisions for backward, eval caches stay whole when
threads run one model at once."""
import copy
import importlib.util
import io
import pickle
import threading
import time

import pytest
import timm
import torch
import torch.utils.checkpoint
from torch import nn

import gfnet_dense  # noqa: F401  (registers the timm models)
from gfnet_dense.layers import GlobalFilter, memoize_in_eval, release_eval_caches
from gfnet_dense.layers.eval_cache import _CACHE_SIZE
from gfnet_dense.models.gfnet import GFBlock
from gfnet_dense.ops import (config, decision_device, fast_path, fast_path_eligible,
                             force_device_type, recompute_contexts, set_fast_path,
                             use_fast_path)

TIMEOUT = 60  # seconds any one wait may take before the test fails instead of hanging


def default_setting():
    """The process-wide default: what a new thread sees."""
    seen = []
    run_in_threads(lambda: seen.append(use_fast_path()))
    return seen[0]


@pytest.fixture
def restore_default():
    """The process-wide default as the test found it (a test that fails midway
    must not leave the switch off for the rest of the suite)."""
    default = default_setting()
    yield
    set_fast_path(default)


def run_in_threads(*targets, sync=None):
    """Run each target in its own thread; re-raise the first error. A failing thread
    breaks the targets' ``sync`` barrier so that the others stop waiting on it."""
    errors = []

    def run(target):
        try:
            target()
        except BaseException as error:  # reported in the calling thread
            errors.append(error)
            if sync is not None:
                sync.abort()
    threads = [threading.Thread(target=run, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(thread.is_alive() for thread in threads), 'a thread hung'
    if errors:
        raise errors[0]


class Probe(nn.Module):
    """Returns what a layer would decide on its input: fast path, decision device,
    ONNX export."""

    def forward(self, x):
        return fast_path_eligible(x), decision_device(x), config.exporting_onnx()


SETTINGS = {  # a thread's block -> what the probe reports inside it
    'fast_path(False)': (lambda: fast_path(False), (False, 'cpu', False)),
    'force_device_type': (lambda: force_device_type('cuda'), (True, 'cuda', False)),
    'onnx_export': (lambda: config.onnx_export('dft'), (False, 'cpu', True)),
}


# ------------------------------------------------------------------ the switch
@pytest.mark.parametrize('setting', list(SETTINGS))
def test_a_block_in_one_thread_is_not_seen_by_another(setting):
    """Each iteration, thread A opens its block, then both threads probe while it is
    open: with one process-wide state, B would see A's setting every time."""
    enter, inside = SETTINGS[setting]
    probe, x, rounds = Probe(), torch.zeros(1), 50
    sync = threading.Barrier(2, timeout=TIMEOUT)
    seen = {'a': [], 'b': []}

    def thread_a():
        for _ in range(rounds):
            with enter():
                sync.wait()  # A's block is open ...
                seen['a'].append(probe(x))
                sync.wait()  # ... until B has probed too
            seen['a'].append(probe(x))

    def thread_b():
        for _ in range(rounds):
            sync.wait()
            seen['b'].append(probe(x))
            sync.wait()

    outside = (True, 'cpu', False)
    run_in_threads(thread_a, thread_b, sync=sync)
    assert seen['a'] == [inside, outside] * rounds
    assert seen['b'] == [outside] * rounds


def test_a_thread_blocks_in_its_own_setting_while_another_turns_it_on(restore_default):
    """Default off; A runs the fast path in its block while B, in none, stays plain."""
    set_fast_path(False)
    sync, seen = threading.Barrier(2, timeout=TIMEOUT), {}

    def thread_a():
        with fast_path(True):
            sync.wait()
            seen['a'] = use_fast_path()
            sync.wait()

    def thread_b():
        sync.wait()
        seen['b'] = use_fast_path()
        sync.wait()

    run_in_threads(thread_a, thread_b, sync=sync)
    assert seen == {'a': True, 'b': False}


def test_set_fast_path_is_the_default_of_new_threads(restore_default):
    seen = []

    def look():
        seen.append(use_fast_path())
    set_fast_path(False)
    assert not use_fast_path()
    run_in_threads(look)  # a thread started after set_fast_path sees it
    with fast_path(True):  # a block is this thread's only
        assert use_fast_path()
        run_in_threads(look)
        set_fast_path(False)  # the caller's setting from now on, even in a block
        assert not use_fast_path()
    set_fast_path(True)
    with fast_path(False):
        run_in_threads(look)
        assert not use_fast_path()
    assert use_fast_path()
    assert seen == [False, False, True]


def test_environment_variable_is_the_default_of_every_thread(monkeypatch):
    # a fresh copy of the config module, as a process started with
    # GFNET_FAST_PATH=0 imports it (cheaper than a subprocess importing torch)
    spec = importlib.util.spec_from_file_location('gfnet_dense.ops._fresh_config',
                                                  config.__file__)
    monkeypatch.setenv('GFNET_FAST_PATH', '0')
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    seen = []
    run_in_threads(lambda: seen.append(fresh.use_fast_path()))
    assert seen == [False] and not fresh.use_fast_path()
    with fresh.fast_path(True):
        assert fresh.use_fast_path()
    assert not fresh.use_fast_path()


# ------------------------------------------------------- backward in another thread
def _grads(block, x, g, device, backward_in):
    """``block(x)`` and its gradients for ``g``: forward with the decisions for
    ``device`` (CUDA's: one MLP chunk, one channel group), backward in this thread
    (``'same'``), in this thread with the switch off and the other device's
    decisions forced (``'flipped'``) or in a fresh thread (``'other thread'``)."""
    params = [x] + list(block.parameters())
    with force_device_type(device):
        out = block(x)
        if backward_in == 'same':
            return out, torch.autograd.grad(out, params, g)
    result = {}

    def backward():
        result['grads'] = torch.autograd.grad(out, params, g)
    if backward_in == 'other thread':
        run_in_threads(backward)
    else:
        with fast_path(False), force_device_type({'cuda': 'cpu', 'cpu': 'cuda'}[device]):
            backward()
    return out, result['grads']


@pytest.mark.parametrize('backward_in', ['other thread', 'flipped'])
def test_backward_takes_the_decisions_of_its_forward(backward_in, monkeypatch):
    # small CPU chunks and channel groups, so that CPU and CUDA decisions differ:
    # 100-row MLP chunks (of 270 rows), groups of 4 channels (of 8) per image
    monkeypatch.setattr(config, 'MLP_CHUNK_ELEMENTS', 100 * 32)
    monkeypatch.setattr(config, 'MLP_CHUNK_MIN_ROWS', 1)
    monkeypatch.setattr(config, 'FFT_GROUP_ELEMENTS', 4 * 10 * 5)
    monkeypatch.setattr(config, 'FFT_GROUP_ALIGN', 1)
    block = GFBlock(8, (6, 6), layer_scale_init=0.3).train()
    x = torch.randn(3, 10, 9, 8, requires_grad=True)
    g = torch.randn(3, 10, 9, 8)
    calls = []
    groups, slices = config.fft_channel_groups, config.row_slices
    monkeypatch.setattr(config, 'fft_channel_groups',
                        lambda shape, device, compiling: calls.append(device) or
                        groups(shape, device, compiling))
    monkeypatch.setattr(config, 'row_slices',
                        lambda rows, step: calls.append(step) or slices(rows, step))
    for device in ('cuda', 'cpu'):
        calls.clear()
        expected_out, expected = _grads(block, x, g, device, 'same')
        decided = list(calls)
        calls.clear()
        out, grads = _grads(block, x, g, device, backward_in)
        assert calls == decided  # forward and backward decided as in one thread
        assert {c for c in calls if isinstance(c, str)} == {device}
        assert torch.equal(out, expected_out)
        for a, b in zip(grads, expected):
            assert torch.equal(a, b)


# --------------------------------------------------------------------- eval caches
def test_model_in_eval_run_by_threads_at_many_sizes_equals_one_thread():
    """Three threads run one model at more sizes than the caches hold, each in its
    own order, so that they fill and evict the same caches at once."""
    torch.manual_seed(0)
    model = timm.create_model('gfnet_h_ti', num_classes=10, img_size=64,
                              embed_dims=[16, 32, 48, 64], depths=[1, 1, 2, 1]).eval()
    sizes = [(40 + 8 * i, 112 - 8 * i) for i in range(_CACHE_SIZE + 2)]
    images = {size: torch.randn(1, 3, *size) for size in sizes}
    expected = {}

    def reference():  # one thread, as the workers (torch's intra-op threads are per thread)
        with torch.no_grad():
            expected.update({size: model(image) for size, image in images.items()})
    run_in_threads(reference)
    release_eval_caches(model)
    workers = 3
    sync = threading.Barrier(workers, timeout=TIMEOUT)
    results = [[] for _ in range(workers)]

    def worker(k):
        order = sizes[k:] + sizes[:k] if k % 2 else list(reversed(sizes))
        sync.wait()
        with torch.no_grad():
            for _ in range(2):
                for size in order:
                    results[k].append((size, model(images[size])))
    run_in_threads(*(lambda k=k: worker(k) for k in range(workers)), sync=sync)
    for outs in results:
        assert len(outs) == 2 * len(sizes)
        for size, out in outs:
            torch.testing.assert_close(out, expected[size], rtol=1e-5, atol=1e-6, msg=str(size))
    caches = [m.__dict__['_eval_cache'] for m in model.modules() if '_eval_cache' in m.__dict__]
    assert caches and all(len(cache) <= _CACHE_SIZE for cache in caches)


class _HashWaits:
    """A cache key whose second hash once ``armed`` (a hit's use of the entry it has
    just found: ``move_to_end`` or the read) waits, up to ``timeout``, for another
    thread to evict it: a hit that holds no lock then finds its key gone."""

    def __init__(self, evicted, timeout):
        self.evicted, self.timeout, self.hashes, self.armed = evicted, timeout, 0, False

    def __hash__(self):
        if self.armed:
            self.hashes += 1
            if self.hashes == 2:
                self.evicted.wait(self.timeout)
        return 1


def test_eviction_cannot_come_between_a_lookup_and_its_use():
    module = nn.Module().eval()
    evicted = threading.Event()
    key = _HashWaits(evicted, timeout=0.3)
    with torch.no_grad():
        assert memoize_in_eval(module, key, lambda: 'first') == 'first'
    key.armed = True
    seen = {}

    def hit():
        with torch.no_grad():  # grad mode is per thread
            seen['hit'] = memoize_in_eval(module, key, lambda: 'recomputed')

    def evict():
        for _ in range(TIMEOUT * 100):  # until the hit is between its lookup and its use
            if key.hashes >= 2:
                break
            time.sleep(0.01)
        with torch.no_grad():
            for i in range(_CACHE_SIZE):
                memoize_in_eval(module, i, lambda: i)
        evicted.set()
    run_in_threads(hit, evict)
    assert seen['hit'] == 'first'
    cache = module.__dict__['_eval_cache']
    assert list(cache) == list(range(_CACHE_SIZE))  # the key was evicted after its hit


def test_modules_with_eval_caches_still_copy_and_pickle():
    layer = GlobalFilter(4, (6, 6)).eval()
    with torch.no_grad():
        layer(torch.randn(1, 7, 9, 4))
    assert layer.__dict__['_eval_cache']
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    for clone in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer)),
                  torch.load(buffer, weights_only=False)):
        assert '_eval_cache' not in clone.__dict__
        x = torch.randn(1, 7, 9, 4)
        with torch.no_grad():
            assert torch.equal(clone(x), layer(x))


@pytest.mark.parametrize('backward_in', ['other thread', 'after the block'])
def test_checkpointed_recomputation_takes_the_forwards_path(backward_in):
    """A block checkpointed under ``fast_path(False)``, its backward (where the
    forward is recomputed) outside that block: with ``recompute_contexts`` the
    recomputation runs the plain path again and the gradients are the plain ones."""
    block = GFBlock(8, (6, 6), layer_scale_init=0.3).train()
    x = torch.randn(2, 7, 9, 8, requires_grad=True)
    params = [x] + list(block.parameters())
    with fast_path(False):
        expected = torch.autograd.grad(block(x).square().sum(), params)
        loss = torch.utils.checkpoint.checkpoint(
            block, x, use_reentrant=False, context_fn=recompute_contexts).square().sum()
    result = {}

    def backward():
        result['grads'] = torch.autograd.grad(loss, params)
    if backward_in == 'other thread':
        run_in_threads(backward)
    else:
        backward()
    for a, b in zip(result['grads'], expected):
        assert torch.equal(a, b)
