"""Modules that FX records as one node, for every tracer."""
import functools
from typing import Type, TypeVar

from timm.layers import register_notrace_module
from torch import fx, nn

ModuleType = TypeVar('ModuleType', bound=Type[nn.Module])


def fx_leaf(cls: ModuleType) -> ModuleType:
    """Class decorator: ``cls`` is one ``call_module`` node in FX graphs and runs as in
    eager when the graph runs (size-dependent resizes, float32 islands, eval caches).

    timm's tracer learns it from ``register_notrace_module``; a plain
    ``torch.fx.Tracer`` (``torch.fx.symbolic_trace``, torchvision's
    ``create_feature_extractor`` without ``tracer_kwargs``) would trace into the
    forward, so the forward records the node itself when it is given a ``Proxy``.
    """
    register_notrace_module(cls)
    forward = cls.forward

    @functools.wraps(forward)
    def forward_or_record(self, x, *args, **kwargs):
        if isinstance(x, fx.Proxy):
            tracer = x.tracer
            return tracer.create_proxy('call_module', tracer.path_of_module(self),
                                       (x, *args), kwargs)
        return forward(self, x, *args, **kwargs)

    cls.forward = forward_or_record
    return cls
