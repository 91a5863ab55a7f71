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
