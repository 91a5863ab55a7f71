"""What the tools share on their command lines: how they end on input they refuse
(one line on stderr, exit status 1) and how they read image sizes (``parse_size``).

A refused checkpoint, image or argument is the user's input, not a bug in the tool:
a traceback would bury the one line that says what was wrong and what to do.
"""
import argparse
import re
import sys
from typing import Callable, Tuple

from .checkpoints import CheckpointMismatchError, UnsafeCheckpointError


class InputError(ValueError):
    """An input a tool refuses (an image, an argument), with a message saying what to do."""


REFUSALS = (CheckpointMismatchError, UnsafeCheckpointError, InputError, ConnectionError,
            FileNotFoundError, IsADirectoryError)


#: the smallest height or width ``parse_size`` accepts
MIN_SIZE = 2
SIZE_FORM = f'HxW (e.g. 512x1024) or N for NxN, whole numbers of at least {MIN_SIZE}'
_SIZE = re.compile(r'([1-9][0-9]*)(?:[xX]([1-9][0-9]*))?')  # no sign, no leading 0


def parse_size(text: str) -> Tuple[int, int]:
    """An image size from the command line as ``(H, W)``: ``'512x1024'`` -> ``(512, 1024)``,
    ``'512'`` -> ``(512, 512)``; the ``x`` may be upper case.

    Nothing else is read as a size: no signs, leading zeros, decimals, spaces, other
    separators or more than two numbers, and both sides at least ``MIN_SIZE``.
    Refusals raise ``argparse.ArgumentTypeError`` naming the value and the expected
    form, so the function serves as an argparse ``type=`` (argparse prints the message).
    """
    match = _SIZE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise argparse.ArgumentTypeError(f'invalid size {text!r}: give {SIZE_FORM}')
    h = int(match.group(1))
    w = int(match.group(2)) if match.group(2) is not None else h
    if min(h, w) < MIN_SIZE:
        raise argparse.ArgumentTypeError(
            f'invalid size {text!r}: height and width must be at least {MIN_SIZE}; '
            f'give {SIZE_FORM}')
    return h, w


def format_size(size: Tuple[int, int]) -> str:
    """``(H, W)`` as ``'HxW'``, the form ``parse_size`` reads back."""
    h, w = size
    return f'{h}x{w}'


def run_tool(main: Callable, *args, **kwargs):
    """``main(*args, **kwargs)``, with refused input ending the process in one line."""
    try:
        return main(*args, **kwargs)
    except REFUSALS as err:
        sys.exit(f'error: {err}')


def finish_distributed() -> None:
    """End a distributed run that finished: free the runner's process-group
    references, wait for every rank, then destroy the group while the interpreter
    is fully alive. Call it after dropping the last reference to the runner.

    A gloo group left to the interpreter's exit aborts the process now and then
    ("terminate called without an active exception", SIGABRT) after a run that
    succeeded: its worker threads release the last collectives' tensors, which
    takes the GIL, and a thread that asks for the GIL while the interpreter
    finalizes exits by unwinding through a noexcept destructor. Destroying the
    group joins those threads, but only once nothing else holds it: the runner's
    DDP wrapper does, and sits in reference cycles, hence the collection first.
    Only for runs that finished: after an error the other ranks may never reach
    the barrier.
    """
    import gc

    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        gc.collect()  # the runner, and its DDP model with the group
        dist.barrier()
        dist.destroy_process_group()
