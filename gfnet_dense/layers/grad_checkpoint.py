"""Running a sequence of blocks under gradient checkpointing."""
from typing import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def run_blocks(blocks: Sequence[nn.Module], x: torch.Tensor, with_cp: bool) -> torch.Tensor:
    """Apply ``blocks`` in turn, each under gradient checkpointing when ``with_cp`` and
    autograd is on (``use_reentrant=False``)."""
    for block in blocks:
        if with_cp and torch.is_grad_enabled():
            x = checkpoint(block, x, use_reentrant=False)
        else:
            x = block(x)
    return x
