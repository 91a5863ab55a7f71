"""How the tools end on a checkpoint they refuse: one line on stderr, exit status 1.

A refused checkpoint is the user's input, not a bug in the tool: a traceback would
bury the one line that says what was wrong and what to do.
"""
import sys
from typing import Callable

from .checks import CheckpointMismatchError, UnsafeCheckpointError

REFUSALS = (CheckpointMismatchError, UnsafeCheckpointError, ConnectionError,
            FileNotFoundError, IsADirectoryError)


def run_tool(main: Callable, *args, **kwargs):
    """``main(*args, **kwargs)``, with a refused checkpoint ending the process in one line."""
    try:
        return main(*args, **kwargs)
    except REFUSALS as err:
        sys.exit(f'error: {type(err).__name__}: {err}')
