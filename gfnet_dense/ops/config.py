"""The fast-path switch and every device-dependent decision of the GFNet kernels.

The kernels (``gfnet_dense.ops.global_filter`` / ``mlp``) ask the pure
functions below instead of testing devices themselves, so that each decision can
be read, tested and changed in one place. They take the device type explicitly;
``decision_device(t)`` gives the one to pass, which ``force_device_type`` can
override (the tests run the CUDA decisions on CPU tensors that way).

The fast path (one autograd Function per global filter and per MLP, chunked CPU
kernels, oneDNN inference MLP) is on by default; ``GFNET_FAST_PATH=0`` in the
environment, ``set_fast_path(False)`` or ``with fast_path(False):`` make every
``GFBlock`` and ``GlobalFilter`` run the plain formulation written in its ``forward``.
Whether a layer takes it for a given input is one decision, ``fast_path_eligible``:
the plain formulation also runs wherever the model is recorded rather than run
(``capturing_graph``: FX, TorchScript, torch.export, ONNX) or its FLOPs are counted
(``FlopCounterMode``).

Threads: the switch has a process-wide default (``GFNET_FAST_PATH`` at import,
``set_fast_path``) and a per-thread setting that the context managers
(``fast_path``, ``onnx_export``, ``force_device_type``) set for their block, so two
threads serving one model each run the path they asked for. A new thread starts
with the default. The per-thread state is a ``threading.local``, not a
``contextvars.ContextVar``: torch.compile traces (and guards on) the former and
breaks its graph on the latter (torch 2.11); so asyncio tasks of one thread share
a setting (a ``with fast_path(...)`` block around an ``await`` reaches the other
tasks). The kernels' autograd Functions take their decisions in ``forward`` and keep
them for ``backward``, which autograd may run in another thread.
"""
import contextlib
import os
import threading
from typing import ContextManager, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch.fx import Proxy

from . import _torch_private

# whether oneDNN's fused linear (private torch API) can run; a global of this
# module, read by ``use_onednn_mlp``, so that tests can patch it here
from ._torch_private import ONEDNN_LINEAR_AVAILABLE

#: CPU MLP: the ``4C``-wide hidden layer is computed in row chunks of about this
#: many elements (8 MiB fp32; the size measured best on CPU: docs/benchmarks.md).
MLP_CHUNK_ELEMENTS = 1 << 21
#: rows per MLP chunk never fall below this
MLP_CHUNK_MIN_ROWS = 256
#: CPU global filter: channels are transformed in groups whose spectrum has about
#: this many elements (2 MiB complex64) ...
FFT_GROUP_ELEMENTS = 1 << 18
#: ... in multiples of this many channels (a 64-byte cache line of the
#: channels-last fp32 output).
FFT_GROUP_ALIGN = 16
#: CPU channels-last -> channels-first transpose: elements per tile (2 MiB fp32).
TRANSPOSE_TILE = 1 << 19
#: CPU inference of an inverted residual block whose expanded map has more than
#: twice this many elements runs in strips of output rows whose expanded rows
#: hold about this many (4 MiB fp32; ``ops.mbconv``).
MBCONV_STRIP_ELEMENTS = 1 << 20

#: the process-wide default of the switch: what a thread sees outside any
#: ``fast_path`` block (``GFNET_FAST_PATH`` at import, then ``set_fast_path``)
_defaults = {'fast_path': os.environ.get('GFNET_FAST_PATH', '1').strip() != '0'}

# The per-thread settings, each absent (read as ``None``) until a context manager
# sets it: ``fast_path`` (bool; ``None``: the default), ``onnx_dft_form`` (the FFT
# form while an ONNX export runs; ``None``: not exporting), ``device_type`` (forced
# decision device; ``None``: the tensor's). Read with ``getattr(_local, name, None)``
# on a plain ``threading.local``: torch.compile guards on that read, not on class
# attributes of a ``threading.local`` subclass (torch 2.11).
_local = threading.local()

#: the forms the FFTs take in an ONNX export (``deploy.onnx_fft``)
ONNX_DFT_FORMS = ('matmul', 'dft')


@contextlib.contextmanager
def _thread_setting(**values: object) -> Iterator[None]:
    """Set the given per-thread settings for the block, then restore this thread's
    previous ones (blocks nest; other threads never see them)."""
    previous = {name: getattr(_local, name, None) for name in values}
    for name, value in values.items():
        setattr(_local, name, value)
    try:
        yield
    finally:
        for name, value in previous.items():
            setattr(_local, name, value)


# ----------------------------------------------------------------- the switch
def use_fast_path() -> bool:
    """Whether ``GFBlock`` / ``GlobalFilter`` run their fast path (default: yes): this
    thread's ``fast_path`` block if it is in one, else the process-wide default."""
    enabled = getattr(_local, 'fast_path', None)
    return _defaults['fast_path'] if enabled is None else enabled


def set_fast_path(enabled: bool) -> None:
    """Turn the fast path on or off for the whole process: the default every thread
    sees outside a ``fast_path`` block (threads started later included), and the
    setting of the calling thread from now on, also inside a ``fast_path`` block
    (until the block ends and restores its own). Threads inside their own
    ``fast_path`` block keep that block's setting."""
    _defaults['fast_path'] = bool(enabled)
    _local.fast_path = None


def fast_path(enabled: bool) -> ContextManager[None]:
    """``with fast_path(False):`` runs the plain formulation inside the block, in
    this thread only (other threads keep theirs)."""
    return _thread_setting(fast_path=bool(enabled))


def exporting_onnx() -> bool:
    """Whether a model is being exported to ONNX in this thread (``onnx_export``)."""
    return getattr(_local, 'onnx_dft_form', None) is not None


def capturing_graph(x: Optional[object] = None) -> bool:
    """Whether the model is being recorded as a graph rather than run: FX symbolic
    tracing (``x`` a ``Proxy``; torchvision's ``create_feature_extractor``, timm's FX
    features), ``torch.jit.trace`` / scripting, ``torch.export``, ``onnx_export``.

    A recorded graph holds the plain formulation: no branch on a size (it would be
    fixed at the example's), no eval cache (a cached tensor would become a constant).
    ``torch.compile`` runs the model and is not capturing in this sense.
    """
    return (isinstance(x, Proxy) or _torch_private.fx_tracing() or torch.jit.is_scripting()
            or torch.jit.is_tracing() or _torch_private.exporting() or exporting_onnx())


def fast_path_eligible(x: object) -> bool:
    """Whether a layer runs its fast path on input ``x``: the one decision every layer
    asks.

    Yes where the switch is on (``use_fast_path``) and the model runs, eagerly or
    under ``torch.compile``; the plain formulation while it is recorded as a graph
    (``capturing_graph``), while ``FlopCounterMode`` counts (the model's own
    arithmetic, not a fused kernel's) and on ``meta`` tensors (shapes only, nothing
    to speed up).
    """
    return (use_fast_path() and not capturing_graph(x) and x.device.type != 'meta'
            and not _torch_private.counting_flops())


def onnx_dft_form() -> str:
    """The form of the FFTs in this thread's ONNX export (``'matmul'`` when none runs):
    ``'matmul'`` or ``'dft'`` (``deploy.onnx_fft``)."""
    return getattr(_local, 'onnx_dft_form', None) or 'matmul'


def onnx_export(dft_form: str = 'matmul') -> ContextManager[None]:
    """Inside (this thread): the plain formulation (the fast path's autograd Functions
    and oneDNN calls do not export), the FFTs in ``dft_form`` (``ONNX_DFT_FORMS``, see
    ``deploy.onnx_fft``)."""
    if dft_form not in ONNX_DFT_FORMS:
        raise ValueError(f'ONNX DFT form must be one of {ONNX_DFT_FORMS}, got {dft_form!r}')
    return _thread_setting(fast_path=False, onnx_dft_form=dft_form)


def force_device_type(device_type: Optional[str]) -> ContextManager[None]:
    """Make ``decision_device`` answer ``device_type`` for every tensor in this thread
    (tests: e.g. the CUDA decisions on CPU tensors); ``None`` the real one."""
    return _thread_setting(device_type=device_type)


def recompute_contexts() -> Tuple[ContextManager[None], ContextManager[None]]:
    """A ``context_fn`` for ``torch.utils.checkpoint.checkpoint``: the recomputation
    of a checkpointed forward, which runs in backward (maybe in another thread, or
    after the ``fast_path`` block has ended), takes the path and decisions the
    forward took (this thread's switch, ONNX form and forced device, as now).
    Without it, a recomputation on the other path saves other tensors and
    checkpointing fails."""
    settings = {name: getattr(_local, name, None) for name in ('onnx_dft_form', 'device_type')}
    return contextlib.nullcontext(), _thread_setting(fast_path=use_fast_path(), **settings)


def decision_device(t: torch.Tensor) -> str:
    """The device type the decisions below are taken for, for tensor ``t``."""
    return getattr(_local, 'device_type', None) or t.device.type


def autocast_off(t: torch.Tensor) -> ContextManager:
    """``torch.autocast`` off for ``t``'s device: a float32 island. The ``meta`` device
    (where timm builds models to check their shapes) has no autocast to turn off."""
    if t.device.type == 'meta':
        return contextlib.nullcontext()
    return torch.autocast(device_type=t.device.type, enabled=False)


# ---------------------------------------------------------------- decisions
def conv_memory_format(x: torch.Tensor, training: bool) -> torch.memory_format:
    """The memory format the convolutional models (AFFNet) run their maps in:
    channels-last for inference (eval mode, no autograd) on the fast path, else
    contiguous NCHW (the plain formulation, and every training step).

    Channels-last is where oneDNN's depthwise and 1x1 convolutions are fast on CPU
    (measurements: docs/benchmarks.md). Training stays NCHW: PyTorch's channels-last
    BatchNorm statistics on CPU sum squares in one pass, less accurate in float32
    than the NCHW kernel (a fast path never trades accuracy); in inference
    BatchNorm uses its running statistics and the GroupNorms run on NCHW planes.
    """
    if use_fast_inference(x, training) and x.dim() == 4:
        return torch.channels_last
    return torch.contiguous_format


def use_fast_inference(x: torch.Tensor, training: bool) -> bool:
    """Whether a module (``training``: its mode) runs an inference fast path on ``x``:
    the fast path eligible (``fast_path_eligible``), eval mode, no autograd."""
    return fast_path_eligible(x) and not training and not torch.is_grad_enabled()


def use_folded_batch_norm(x: torch.Tensor, training: bool) -> bool:
    """Convolution + BatchNorm as one convolution (``ops.conv_bn``): inference on the
    fast path, where BatchNorm's statistics are fixed."""
    return use_fast_inference(x, training)


def mbconv_strip_rows(hidden_shape: Sequence[int], stride: int,
                      device_type: str) -> Optional[int]:
    """Output rows per strip of an inverted residual block whose expanded map is
    ``(B, C, H, W)`` (depthwise ``stride``), or ``None`` for the whole map: CPU
    only, where a map-sized buffer is page-faulted in on every call; accelerators
    run the whole map."""
    batch, channels, height, width = hidden_shape
    if device_type != 'cpu' or batch * channels * height * width <= 2 * MBCONV_STRIP_ELEMENTS:
        return None
    input_rows = MBCONV_STRIP_ELEMENTS // (batch * channels * width)
    return max(1, input_rows // stride)


def mlp_row_chunk(device_type: str, dtype: torch.dtype, backward: bool) -> Optional[int]:
    """Hidden elements per MLP row chunk, or ``None`` for one chunk.

    CPU only: there a fresh ``4C``-wide buffer costs more in page faults than the
    arithmetic on it. With ``backward`` (weight gradients add up over the
    chunks) float32 only, so that 16-bit gradients are one GEMM each, as in
    ``nn.Linear``. Accelerators run one chunk.
    """
    if device_type != 'cpu' or (backward and dtype != torch.float32):
        return None
    return MLP_CHUNK_ELEMENTS


def chunk_rows(rows: int, hidden: int, chunk_elements: Optional[int]) -> int:
    """Rows per chunk of an MLP whose hidden layer is ``rows x hidden``: all of them,
    or about ``chunk_elements`` hidden elements' worth (at least ``MLP_CHUNK_MIN_ROWS``)."""
    if chunk_elements and rows * hidden > chunk_elements:
        return max(MLP_CHUNK_MIN_ROWS, chunk_elements // hidden)
    return max(rows, 1)


def row_slices(rows: int, step: int) -> List[slice]:
    """``rows`` rows as consecutive slices of ``step`` rows (the last may be shorter)."""
    return [slice(start, start + step) for start in range(0, rows, step)]


def row_chunks(rows: int, hidden: int, chunk_elements: Optional[int]) -> List[slice]:
    """Row slices for an MLP whose hidden layer is ``rows x hidden``: one slice, or
    slices of about ``chunk_elements`` hidden elements each (``chunk_rows``)."""
    return row_slices(rows, chunk_rows(rows, hidden, chunk_elements))


def use_onednn_mlp(device_type: str, dtype: torch.dtype, compiling: bool) -> bool:
    """Inference MLP as two fused oneDNN linears on cached reordered weights: CPU
    float32 eager only (torch.compile emits the same kernels itself)."""
    return (ONEDNN_LINEAR_AVAILABLE and device_type == 'cpu' and dtype == torch.float32
            and not compiling)


def use_tiled_transpose(device_type: str, grad_enabled: bool, compiling: bool) -> bool:
    """Channels-last -> channels-first by cache-sized tiles: CPU eager inference."""
    return device_type == 'cpu' and not grad_enabled and not compiling


def fft_channel_groups(shape: Sequence[int], device_type: str, compiling: bool
                       ) -> List[Tuple[Union[None, int, slice], slice]]:
    """``(images, channels)`` groups that cover ``(B, C, H, W)`` planes: ``images`` is
    one image's index, a slice of whole images, or ``None`` (the whole batch).

    On CPU a group's transforms and their scratch buffers stay in cache and are
    reused from group to group, where whole-grid transforms allocate (and
    page-fault in) several grid-sized temporaries per call. Small grids put
    several whole images in a group: one call per image would cost more in call
    overhead than the transforms themselves (an 8x8 grid's). On other devices
    and under torch.compile the whole batch is one group.
    """
    batch, channels, height, width = shape
    if device_type != 'cpu' or compiling:
        return [(None, slice(None))]
    step = FFT_GROUP_ELEMENTS // (height * (width // 2 + 1))
    step = max(FFT_GROUP_ALIGN, step - step % FFT_GROUP_ALIGN)
    if step >= channels:
        images = step // channels
        if images >= batch:
            return [(None, slice(None))]
        return [(slice(b, b + images), slice(None)) for b in range(0, batch, images)]
    return [(b, slice(c, c + step)) for b in range(batch) for c in range(0, channels, step)]
