"""Patch embedding and its token grid: grid sizes, position embedding resizing."""
import math
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.config import capturing_graph
from .filter_resize import interpolate_grid


def grid_after(size: Tuple[int, int], stride: int) -> Tuple[int, int]:
    """Token grid of a stride-``stride`` patch embedding (with padding) of an image of ``size``."""
    return math.ceil(size[0] / stride), math.ceil(size[1] / stride)


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch x patch`` conv: ``(B, C, H, W) -> (B, ceil(H/p), ceil(W/p), D)``,
    a contiguous channels-last token grid; inputs are zero-padded at the bottom and
    right to a multiple of the patch."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.patch_size
        pad_h, pad_w = -x.shape[2] % p, -x.shape[3] % p
        if capturing_graph(x) or pad_h or pad_w:  # recorded: no branch on a symbolic size
            x = F.pad(x, (0, pad_w, 0, pad_h))
        # a channels-last input makes the conv write channels-last, so the
        # channels-last token grid below is contiguous without a copy
        x = x.contiguous(memory_format=torch.channels_last)
        return self.proj(x).permute(0, 2, 3, 1)


def resize_pos_embed(pos_embed: torch.Tensor, src_grid: Sequence[int],
                     dst_grid: Sequence[int], onnx: bool = False) -> torch.Tensor:
    """Bicubic resize of a ``(1, h*w, C)`` position embedding to ``(1, H*W, C)``;
    ``onnx``: the form an ONNX export records (resized at any, symbolic, grid)."""
    if not onnx and tuple(src_grid) == tuple(dst_grid):
        return pos_embed
    grid = pos_embed.float().reshape(src_grid[0], src_grid[1], -1)
    out = interpolate_grid(grid, dst_grid, 'bicubic', align_corners=False, onnx=onnx)
    return out.reshape(1, -1, pos_embed.shape[-1]).to(pos_embed.dtype)
