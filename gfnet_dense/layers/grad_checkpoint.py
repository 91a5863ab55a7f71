"""Running a sequence of blocks under gradient checkpointing."""
from typing import Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..ops import recompute_contexts


def run_blocks(blocks: Sequence[nn.Module], x: torch.Tensor, with_cp: bool) -> torch.Tensor:
    """Apply ``blocks`` in turn, each under gradient checkpointing (``use_reentrant=False``)
    when ``with_cp`` and autograd is on.

    Not timm's ``checkpoint_seq``: the recomputation in backward must take the path
    the forward took (``ops.recompute_contexts``), which ``checkpoint_seq`` cannot pass.
    """
    if not (with_cp and torch.is_grad_enabled()):
        for block in blocks:
            x = block(x)
        return x
    for block in blocks:
        x = checkpoint(block, x, use_reentrant=False, context_fn=recompute_contexts)
    return x
