"""``forward_reference``: a layer's plain branch, to check its fast path against."""
import torch

from .. import ops


class ForwardReferenceMixin:
    """For modules whose ``forward`` has a fast path (``ops.fast_path_eligible``)."""

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """``forward`` with the fast path off, for the call."""
        with ops.fast_path(False):
            return self.forward(x)
