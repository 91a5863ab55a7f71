"""The private torch APIs the kernels and the fast-path decision use, all in this module.

The fast-path decision (``config.fast_path_eligible``): whether FX symbolically
traces, whether torch.export traces and whether a ``FlopCounterMode`` counts are
read from torch's own state here.

oneDNN's fused linear layers (``torch.ops.mkldnn._linear_pointwise``, what
torch.compile's CPU backend emits for ``nn.Linear``) and their weight
prepacking (``_reorder_linear_weight``) are not public API. They are used only
where this torch has them with the signatures written against (checked by
version and by schema); everywhere else ``ONEDNN_LINEAR_AVAILABLE`` is false and
the callers take their public-API path.
"""
import re
from typing import Optional, Tuple

import torch
import torch.compiler
from torch.fx._symbolic_trace import is_fx_symbolic_tracing
from torch.utils._python_dispatch import _get_current_dispatch_mode_stack, is_in_torch_dispatch_mode
from torch.utils.flop_counter import _FlopCounterMode

#: first torch release whose ``_linear_pointwise`` / ``_reorder_linear_weight`` match
MIN_TORCH_VERSION = (2, 1)

_SCHEMAS = {  # op overload -> argument names its call below relies on
    ('_linear_pointwise', 'default'): ('X', 'W', 'B', 'attr', 'scalars', 'algorithm'),
    ('_linear_pointwise', 'binary'): ('X', 'other', 'W', 'B', 'attr'),
    ('_reorder_linear_weight', 'default'): ('self', 'batch_size'),
}


def _torch_version() -> Tuple[int, int]:
    major, minor = re.match(r'(\d+)\.(\d+)', torch.__version__).groups()
    return int(major), int(minor)


def _has_schema(op_name: str, overload: str, arguments: Tuple[str, ...]) -> bool:
    packet = getattr(torch.ops.mkldnn, op_name, None)
    op = getattr(packet, overload, None) if packet is not None else None
    return op is not None and tuple(a.name for a in op._schema.arguments) == arguments


def _onednn_linear_available() -> bool:
    try:
        return (_torch_version() >= MIN_TORCH_VERSION and torch.backends.mkldnn.is_available()
                and all(_has_schema(op, overload, args)
                        for (op, overload), args in _SCHEMAS.items()))
    except (AttributeError, RuntimeError):  # a build without the mkldnn op namespace
        return False


#: oneDNN's fused linear layers can be called (CPU builds with oneDNN)
ONEDNN_LINEAR_AVAILABLE = _onednn_linear_available()


def reorder_linear_weight(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """``weight`` ``(out, in)`` prepacked for inputs of about ``rows`` rows (any row
    count works): an opaque tensor only ``linear_gelu`` / ``linear_add`` read."""
    return torch.ops.mkldnn._reorder_linear_weight(weight, rows)


def linear_gelu(x: torch.Tensor, weight: torch.Tensor,
                bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``gelu(x @ weight.T + bias)`` in one oneDNN call: ``(N, in) -> (N, out)``."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, 'gelu', [], 'none')


def linear_add(x: torch.Tensor, other: torch.Tensor, weight: torch.Tensor,
               bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``x @ weight.T + bias + other`` in one oneDNN call: ``(N, in) -> (N, out)``."""
    return torch.ops.mkldnn._linear_pointwise.binary(x, other, weight, bias, 'add')


def fx_tracing() -> bool:
    """Whether ``torch.fx`` symbolically traces (for code that sees no ``Proxy``: eval caches)."""
    return is_fx_symbolic_tracing()


def exporting() -> bool:
    """Whether ``torch.export`` traces. Not ``torch.compiler.is_exporting()``: Dynamo
    folds that to ``True`` under ``torch.compile`` as well (torch 2.11), so its flag,
    which only torch.export sets, is read instead."""
    return torch.compiler._is_exporting_flag


def counting_flops() -> bool:
    """Whether a ``torch.utils.flop_counter.FlopCounterMode`` is active (its dispatch
    mode is on the stack; the flag, which Dynamo can read, says first whether any mode
    other than the fake- and proxy-tensor ones of torch.compile / make_fx is)."""
    return is_in_torch_dispatch_mode(include_infra_modes=False) and any(
        isinstance(mode, _FlopCounterMode) for mode in _get_current_dispatch_mode_stack())
