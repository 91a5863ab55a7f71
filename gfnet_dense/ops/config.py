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
"""
import contextlib
import os
from typing import ContextManager, Iterator, List, Optional, Sequence, Tuple

import torch
from torch.fx import Proxy

from . import _torch_private

# whether oneDNN's fused linear (private torch API) can run; a global of this
# module, read by ``use_onednn_mlp``, so that tests can patch it here
from ._torch_private import ONEDNN_LINEAR_AVAILABLE

#: CPU MLP: the ``4C``-wide hidden layer is computed in row chunks of about this
#: many elements (8 MiB fp32), measured best on a 2-core CPU across the four
#: GFNet-H stages at 512-2048 pixels.
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

_state = {'fast_path': os.environ.get('GFNET_FAST_PATH', '1').strip() != '0',
          'device_type': None, 'onnx_export': False, 'onnx_dft_form': 'matmul'}

#: the forms the FFTs take in an ONNX export (``ops.dft``)
ONNX_DFT_FORMS = ('matmul', 'dft')


# ----------------------------------------------------------------- the switch
def use_fast_path() -> bool:
    """Whether ``GFBlock`` / ``GlobalFilter`` run their fast path (default: yes)."""
    return _state['fast_path']


def set_fast_path(enabled: bool) -> None:
    """Turn the fast path on or off for the whole process."""
    _state['fast_path'] = bool(enabled)


@contextlib.contextmanager
def fast_path(enabled: bool) -> Iterator[None]:
    """``with fast_path(False):`` runs the plain formulation inside the block."""
    previous = use_fast_path()
    set_fast_path(enabled)
    try:
        yield
    finally:
        set_fast_path(previous)


def exporting_onnx() -> bool:
    """Whether a model is being exported to ONNX (``onnx_export``)."""
    return _state['onnx_export']


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
    """The form of the FFTs in an ONNX export: ``'matmul'`` or ``'dft'`` (``ops.dft``)."""
    return _state['onnx_dft_form']


@contextlib.contextmanager
def onnx_export(dft_form: str = 'matmul') -> Iterator[None]:
    """Inside: the plain formulation (the fast path's autograd Functions and oneDNN
    calls do not export), the FFTs in ``dft_form`` (``ONNX_DFT_FORMS``, see ``ops.dft``)."""
    if dft_form not in ONNX_DFT_FORMS:
        raise ValueError(f'ONNX DFT form must be one of {ONNX_DFT_FORMS}, got {dft_form!r}')
    keys = ('fast_path', 'onnx_export', 'onnx_dft_form')
    previous = {key: _state[key] for key in keys}
    _state.update(fast_path=False, onnx_export=True, onnx_dft_form=dft_form)
    try:
        yield
    finally:
        _state.update(previous)


@contextlib.contextmanager
def force_device_type(device_type: Optional[str]) -> Iterator[None]:
    """Make ``decision_device`` answer ``device_type`` for every tensor (tests:
    e.g. the CUDA decisions on CPU tensors); ``None`` restores the real one."""
    previous = _state['device_type']
    _state['device_type'] = device_type
    try:
        yield
    finally:
        _state['device_type'] = previous


def decision_device(t: torch.Tensor) -> str:
    """The device type the decisions below are taken for, for tensor ``t``."""
    return _state['device_type'] or t.device.type


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
    (AFFNet-S at 512x512 forward: about 3x faster than NCHW on 2 cores, see
    BENCHMARKS.md). Training stays NCHW: PyTorch's channels-last BatchNorm
    statistics on CPU sum squares in one pass, measured 2-20x less accurate in
    float32 than the NCHW kernel (a fast path never trades accuracy); in inference
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


def row_chunks(rows: int, hidden: int, chunk_elements: Optional[int]) -> List[slice]:
    """Row slices for an MLP whose hidden layer is ``rows x hidden``: one slice, or
    slices of about ``chunk_elements`` hidden elements each (at least
    ``MLP_CHUNK_MIN_ROWS`` rows)."""
    step = rows
    if chunk_elements and rows * hidden > chunk_elements:
        step = max(MLP_CHUNK_MIN_ROWS, chunk_elements // hidden)
    return [slice(start, start + step) for start in range(0, rows, step)]


def use_onednn_mlp(device_type: str, dtype: torch.dtype, compiling: bool) -> bool:
    """Inference MLP as two fused oneDNN linears on cached reordered weights: CPU
    float32 eager only (torch.compile emits the same kernels itself)."""
    return (ONEDNN_LINEAR_AVAILABLE and device_type == 'cpu' and dtype == torch.float32
            and not compiling)


def use_tiled_transpose(device_type: str, grad_enabled: bool, compiling: bool) -> bool:
    """Channels-last -> channels-first by cache-sized tiles: CPU eager inference."""
    return device_type == 'cpu' and not grad_enabled and not compiling


def fft_channel_groups(shape: Sequence[int], device_type: str,
                       compiling: bool) -> List[Tuple[Optional[int], slice]]:
    """``(image, channels)`` groups that cover ``(B, C, H, W)`` planes (``image``
    ``None``: the whole batch).

    On CPU a group's transforms and their scratch buffers stay in cache and are
    reused from group to group, where whole-grid transforms allocate (and
    page-fault in) several grid-sized temporaries per call. On other devices
    and under torch.compile the whole batch is one group.
    """
    batch, channels, height, width = shape
    if device_type != 'cpu' or compiling:
        return [(None, slice(None))]
    step = FFT_GROUP_ELEMENTS // (height * (width // 2 + 1))
    step = max(FFT_GROUP_ALIGN, step - step % FFT_GROUP_ALIGN)
    if batch == 1 and step >= channels:
        return [(None, slice(None))]
    return [(b, slice(c, c + step)) for b in range(batch) for c in range(0, channels, step)]
