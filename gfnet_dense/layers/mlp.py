"""The channel MLP of a GFNet block."""
import torch
from torch import nn

from .eval_cache import EvalCacheMixin


class Mlp(EvalCacheMixin, nn.Module):
    """``fc1 -> GELU -> fc2`` on the last dim: ``(..., C) -> (..., C)``.

    Its eval cache holds the weights ``gfnet_dense.ops.residual_mlp`` prepacks.
    """

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))
