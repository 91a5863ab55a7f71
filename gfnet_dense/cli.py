"""How the tools end on input they refuse: one line on stderr, exit status 1.

A refused checkpoint, image or argument is the user's input, not a bug in the tool:
a traceback would bury the one line that says what was wrong and what to do.
"""
import sys
from typing import Callable

from .checkpoints import CheckpointMismatchError, UnsafeCheckpointError


class InputError(ValueError):
    """An input a tool refuses (an image, an argument), with a message saying what to do."""


REFUSALS = (CheckpointMismatchError, UnsafeCheckpointError, InputError, ConnectionError,
            FileNotFoundError, IsADirectoryError)


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
