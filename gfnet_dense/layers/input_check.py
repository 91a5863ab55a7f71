"""Checks on what a network is given, failing with messages that name the fix."""
import torch
from torch.fx import Proxy


def check_image_batch(x: torch.Tensor, in_chans: int, name: str) -> None:
    """Fail with a message naming the problem unless ``x`` is a non-empty NCHW batch.

    Under FX symbolic tracing ``x`` is a ``Proxy`` with no sizes yet: nothing is
    checked (the traced graph then runs without the check).
    """
    if isinstance(x, Proxy):
        return
    if not isinstance(x, torch.Tensor):
        raise TypeError(f'{name} expects a torch.Tensor, got {type(x).__name__}')
    if x.dim() != 4:
        raise ValueError(f'{name} expects a 4-D (N, C, H, W) image batch, got a {x.dim()}-D '
                         f'tensor of shape {tuple(x.shape)}; use x[None] for a single image')
    if x.shape[1] != in_chans:
        raise ValueError(f'{name} was built for {in_chans} input channels but got '
                         f'{x.shape[1]} (input shape {tuple(x.shape)}); build it with '
                         f'in_channels={x.shape[1]} (in_chans for timm) or fix the input')
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f'{name} got an empty batch of shape {tuple(x.shape)}')
