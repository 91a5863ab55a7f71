"""What torch's and mmengine's FLOP counters need to count these models as the papers do.

The convention is the GFNet paper's: fvcore's (which mmengine's
``FlopAnalyzer`` copies) plus the FFTs. Counts are multiply-accumulates (MACs;
fvcore and mmengine call one MAC one FLOP, torch's ``FlopCounterMode`` counts
it as 2):

* convolutions and matrix products: their MACs (both counters do this already);
* an FFT over ``N`` points of ``C`` channels (real-to-complex, complex-to-real or
  complex-to-complex): ``N * C * ceil(log2 N)``, as the GFNet authors add by hand
  (``fft_macs``); the element-wise filter product is not counted;
* the norms and resampling that fvcore counts (mmengine's default table:
  LayerNorm and GroupNorm ``5 * numel`` (4 without affine), BatchNorm
  ``2 * numel`` in eval (1 without affine; in training as the others), bilinear
  upsampling and grid sampling ``4 * output numel``, adaptive average pooling
  ``input numel``); other element-wise ops are not counted. fvcore's nearest
  upsampling (``output numel``, in FPN necks: a few millionths of a detector)
  is left out on the torch side: ``FlopCounterMode`` decomposes that op before
  it looks for a formula.

Without this module neither counter sees the FFTs, and ``FlopCounterMode``
none of those norms and resampling ops either, nor the private oneDNN linear
layers of the inference fast path (``gfnet_dense.ops.mlp``).

Importing this module registers in torch (``register_flop_formula``, so that
any ``FlopCounterMode`` counts them):

* ``aten._fft_r2c``, ``aten._fft_c2r``, ``aten._fft_c2c``;
* ``mkldnn._linear_pointwise`` (both overloads: ``x @ W.T``, the bias and the
  fused GELU / add not counted), where this torch build has it;
* the norm and resampling ops above (``native_layer_norm``,
  ``native_batch_norm`` and the variants it decomposes into,
  ``native_group_norm``, ``upsample_bilinear2d``, ``_adaptive_avg_pool2d``,
  ``grid_sampler_2d``), so that ``FlopCounterMode`` counts what mmengine
  counts (in FLOPs, 2 per MAC), for any model. An op torch already has a
  formula for is left as torch counts it.

``FORMULAS`` holds the same formulas for ``FlopCounterMode(custom_mapping=...)``
(``gfnet_dense.flops.count_flops`` uses it).

mmengine: ``MMENGINE_HANDLES`` are handles for ``FlopAnalyzer.set_op_handle``
(the traced FFT ops ``aten::fft_rfft2``, ``aten::fft_irfft2``, ... as above).
``register_mmengine_handles()`` (called when ``gfnet_dense.mm`` is imported)
adds them to mmengine's default op table, ``_DEFAULT_SUPPORTED_FLOP_OPS`` in
``mmengine.analysis.complexity_analysis``, which every ``FlopAnalyzer`` --
and so ``get_model_complexity_info`` and the ``get_flops.py`` tools of MMSeg
and MMDet, which take no handles -- starts from. That table is private to
mmengine, so this is done for mmengine 0.10.7 only (checked); with any other
version nothing is changed and a warning is issued once: add the handles to
an analyzer yourself (``add_mmengine_handles(analyzer)``). mmengine is not
imported by this module until ``register_mmengine_handles`` runs.
"""
import math
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch.utils import flop_counter

from .ops._torch_private import ONEDNN_LINEAR_AVAILABLE

aten = torch.ops.aten

#: the mmengine release whose private default op table ``register_mmengine_handles`` extends
MMENGINE_VERSION = '0.10.7'


def fft_macs(shape: Sequence[int], dims: Optional[Sequence[int]]) -> int:
    """MACs of an FFT over ``dims`` (``None``: all) of a ``shape`` grid (real for
    a real transform, the complex one otherwise): ``N * C * ceil(log2 N)`` for
    ``N`` points and ``C`` the remaining elements (channels, batch)."""
    shape = list(shape)
    if dims is None:
        dims = range(len(shape))
    elif isinstance(dims, int):
        dims = [dims]
    points = math.prod(shape[d] for d in dims)
    if points == 0:
        return 0
    channels = math.prod(shape) // points
    return channels * points * math.ceil(math.log2(max(points, 2)))


# ------------------------------------------------------------ torch formulas
# FlopCounterMode formulas get tensor arguments as shapes, the others as passed;
# they return FLOPs, 2 per MAC.
def _r2c(input_shape, dim, *args, out_shape=None, **kwargs) -> int:
    # _fft_r2c(self, dim, normalization, onesided): the real input is the grid
    return 2 * fft_macs(input_shape, dim)


def _c2r(input_shape, dim, normalization=None, last_dim_size=None, *args, out_shape=None,
         **kwargs) -> int:
    # _fft_c2r(self, dim, normalization, last_dim_size): the real output is the grid
    real = list(input_shape)
    real[dim[-1]] = last_dim_size if last_dim_size is not None else 2 * (real[dim[-1]] - 1)
    return 2 * fft_macs(real, dim)


def _c2c(input_shape, dim, *args, out_shape=None, **kwargs) -> int:
    return 2 * fft_macs(input_shape, dim)


def _onednn_linear(x_shape, *args, out_shape=None, **kwargs) -> int:
    """``mkldnn._linear_pointwise``: ``(X, W, B, attr, scalars, algorithm)`` or, the
    ``binary`` overload, ``(X, other, W, B, attr)``; ``W`` is ``(out, in)``."""
    weight_shape = args[1] if len(args) == 4 else args[0]
    return 2 * math.prod(x_shape) * weight_shape[0]


def _norm(input_shape, affine: bool) -> int:
    return 2 * (5 if affine else 4) * math.prod(input_shape)


def _layer_norm(input_shape, normalized_shape=None, weight=None, *args, out_shape=None,
                **kwargs) -> int:
    return _norm(input_shape, weight is not None)


def _group_norm(input_shape, weight=None, *args, out_shape=None, **kwargs) -> int:
    return _norm(input_shape, weight is not None)


def _batch_norm_formula(default_training: Optional[bool]) -> Callable[..., int]:
    """BatchNorm as fvcore: ``norm`` in training, ``1 (2 with affine) * numel`` in
    eval. ``training`` is the op's first bool argument (``native_batch_norm``,
    ``cudnn_batch_norm``, ``_native_batch_norm_legit`` ...) or fixed by the op."""
    def formula(input_shape, weight=None, *args, out_shape=None, **kwargs) -> int:
        flags = [a for a in args if isinstance(a, bool)]
        training = flags[0] if flags else default_training
        if training:
            return _norm(input_shape, weight is not None)
        return 2 * (2 if weight is not None else 1) * math.prod(input_shape)
    return formula


def _output_elementwise(scale: int) -> Callable[..., int]:
    def formula(*args, out_shape=None, **kwargs) -> int:
        return 2 * scale * math.prod(out_shape)
    return formula


def _input_elementwise(input_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * math.prod(input_shape)


def _build_formulas() -> Dict[Any, Callable[..., int]]:
    table = {aten._fft_r2c: _r2c, aten._fft_c2r: _c2r, aten._fft_c2c: _c2c,
             aten.native_layer_norm: _layer_norm, aten.native_group_norm: _group_norm,
             aten.upsample_bilinear2d: _output_elementwise(4),
             aten.grid_sampler_2d: _output_elementwise(4),
             aten._adaptive_avg_pool2d: _input_elementwise}
    batch_norms = {'native_batch_norm': None, 'cudnn_batch_norm': None,
                   'miopen_batch_norm': None, '_native_batch_norm_legit': None,
                   '_native_batch_norm_legit_no_training': False,
                   '_batch_norm_with_update': True, '_batch_norm_no_update': False}
    for name, training in batch_norms.items():
        op = getattr(aten, name, None)  # the variants differ between torch releases
        if op is not None:
            table[op] = _batch_norm_formula(training)
    if ONEDNN_LINEAR_AVAILABLE:
        table[torch.ops.mkldnn._linear_pointwise] = _onednn_linear
    return table


#: op packet -> FlopCounterMode formula (FLOPs), for ``custom_mapping``
FORMULAS: Dict[Any, Callable[..., int]] = _build_formulas()


def register_torch_formulas() -> List[str]:
    """Register ``FORMULAS`` with torch's ``FlopCounterMode`` for every op torch
    has no formula for yet (done on import; calling again does nothing). Returns
    the names of the ops registered by this call."""
    registered = []
    for op, formula in FORMULAS.items():
        if op in flop_counter.flop_registry:
            continue
        flop_counter.register_flop_formula(op)(formula)
        registered.append(str(op))
    return registered


register_torch_formulas()


# ---------------------------------------------------------- mmengine handles
# A handle gets the traced node's inputs and outputs (torch._C.Value) and returns MACs.
def _jit_shape(value) -> Optional[List[int]]:
    kind = value.type()
    return kind.sizes() if isinstance(kind, torch._C.TensorType) else None


def _jit_constant(value):
    """A traced argument's value: a constant, or a list of constants, else ``None``."""
    constant = value.toIValue()
    if constant is not None:
        return constant
    node = value.node()
    if node.kind() == 'prim::ListConstruct':
        items = [v.toIValue() for v in node.inputs()]
        return None if any(i is None for i in items) else items
    return None


def _jit_fft_handle(kind: str, default_dims: Optional[Sequence[int]]) -> Callable[..., int]:
    """Handle for a traced ``torch.fft`` op: ``aten::fft_<op>(self, s or n, dim, norm)``.

    The grid is the real input of an ``r2c`` transform (resized to ``s`` where it
    is given), the real output of a ``c2r`` one, the complex output of a ``c2c``
    one; ``default_dims`` (``None``: all) where ``dim`` is ``None``."""
    def handle(inputs: List[Any], outputs: List[Any]) -> int:
        dims = _jit_constant(inputs[2]) if len(inputs) > 2 else None
        if dims is None:
            dims = default_dims
        if isinstance(dims, int):
            dims = [dims]
        if kind == 'r2c':
            shape = list(_jit_shape(inputs[0]))
            sizes = _jit_constant(inputs[1])
            if isinstance(sizes, int):
                sizes = [sizes]
            if sizes is not None:
                for d, n in zip(dims if dims is not None else range(-len(sizes), 0), sizes):
                    shape[d] = n
        else:
            shape = _jit_shape(outputs[0])
        return fft_macs(shape, dims)
    return handle


def _mmengine_handles() -> Dict[str, Callable[..., int]]:
    handles = {}
    for suffix, dims in (('', [-1]), ('2', [-2, -1]), ('n', None)):
        handles[f'aten::fft_rfft{suffix}'] = _jit_fft_handle('r2c', dims)
        handles[f'aten::fft_irfft{suffix}'] = _jit_fft_handle('c2r', dims)
        handles[f'aten::fft_fft{suffix}'] = _jit_fft_handle('c2c', dims)
        handles[f'aten::fft_ifft{suffix}'] = _jit_fft_handle('c2c', dims)
    return handles


#: traced op name -> mmengine ``FlopAnalyzer`` handle (MACs)
MMENGINE_HANDLES: Dict[str, Callable[..., int]] = _mmengine_handles()


def add_mmengine_handles(analyzer):
    """``analyzer.set_op_handle(**MMENGINE_HANDLES)`` for a ``FlopAnalyzer`` (any
    mmengine version); returns the analyzer."""
    return analyzer.set_op_handle(**MMENGINE_HANDLES)


_state = {'warned': False}


def register_mmengine_handles() -> bool:
    """Add ``MMENGINE_HANDLES`` to mmengine's default FLOP op table, so that every
    ``FlopAnalyzer`` -- ``get_model_complexity_info``, MMSeg's and MMDet's
    ``get_flops.py`` -- counts the FFTs. mmengine 0.10.7 only (the table is
    private); otherwise nothing changes and a warning is issued once. Entries
    already in the table are kept. Returns whether the table holds the handles."""
    import mmengine
    from mmengine.analysis import complexity_analysis
    table = getattr(complexity_analysis, '_DEFAULT_SUPPORTED_FLOP_OPS', None)
    if mmengine.__version__ != MMENGINE_VERSION or not isinstance(table, dict):
        if not _state['warned']:
            _state['warned'] = True
            warnings.warn(
                f'gfnet_dense: mmengine {mmengine.__version__} is not {MMENGINE_VERSION}, so its '
                'default FLOP op table is left alone and FlopAnalyzer / get_model_complexity_info '
                'count no FFT; add the handles to an analyzer with '
                'gfnet_dense.flop_handles.add_mmengine_handles(analyzer)', stacklevel=2)
        return False
    for name, handle in MMENGINE_HANDLES.items():
        table.setdefault(name, handle)
    return True
