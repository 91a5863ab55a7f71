"""Checkpoint files that run code when unpickled in full: the attacks the loaders must refuse.

Each payload writes ``sentinel`` when it runs. ``write_crafted`` puts one into an
otherwise genuine MMEngine-style checkpoint of ``state_dict``.
"""
import argparse
import os

import torch


class Call:
    """Pickles as ``fn(*args)``: what a malicious file asks the unpickler to do."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args

    def __call__(self, *args):  # pickle wants the callable of a reduce to look callable
        raise AssertionError('never called here')


def _write_code(sentinel: str) -> str:
    return f'open({sentinel!r}, "w").write("code ran")'


def numpy_runstring(sentinel: str):
    """A numpy callable that executes a string (``runstring`` is ``exec``)."""
    from numpy.testing._private.utils import runstring
    return Call(runstring, _write_code(sentinel), {})


def getattr_chain_to_eval(sentinel: str):
    """``getattr`` from an admitted class to ``eval``:
    ``Namespace.__init__.__globals__['__builtins__']['eval'](code)``."""
    init = Call(getattr, argparse.Namespace, '__init__')
    module_globals = Call(getattr, init, '__globals__')
    builtins_dict = Call(Call(getattr, module_globals, 'get'), '__builtins__')
    evaluate = Call(Call(getattr, builtins_dict, 'get'), 'eval')
    return Call(evaluate, _write_code(sentinel))


def torch_save_call(sentinel: str):
    """A torch callable that is no tensor or storage constructor: ``torch.save`` writes a file."""
    return Call(torch.save, {'code': 'ran'}, sentinel)


def history_buffer_getattr(sentinel: str):
    """``getattr`` on MMEngine's HistoryBuffer for something other than its statistics."""
    from mmengine.logging import HistoryBuffer
    init = Call(getattr, HistoryBuffer, '__init__')
    module_globals = Call(getattr, init, '__globals__')
    builtins_dict = Call(Call(getattr, module_globals, 'get'), '__builtins__')
    return Call(Call(Call(getattr, builtins_dict, 'get'), 'exec'), _write_code(sentinel))


PAYLOADS = {
    'numpy_runstring': numpy_runstring,
    'getattr_chain_to_eval': getattr_chain_to_eval,
    'torch_save_call': torch_save_call,
    'history_buffer_getattr': history_buffer_getattr,
}
# where the payload sits in the file
PLACES = ('top_level', 'message_hub', 'optimizer_state')


def genuine_message_hub():
    """What MMEngine's MessageHub.state_dict() holds: HistoryBuffers with numpy arrays."""
    from mmengine.logging import HistoryBuffer
    buffer = HistoryBuffer()
    for value in (1.5, 1.25, 1.0):
        buffer.update(value)
    return {'log_scalars': {'train/loss': buffer},
            'runtime_info': {'iter': 3, 'epoch': 0}, 'resumed_keys': {'iter': True}}


def write_crafted(path, state_dict: dict, payload: str, place: str, sentinel: str) -> str:
    """An MMEngine-layout checkpoint of ``state_dict`` carrying ``payload`` at ``place``."""
    evil = PAYLOADS[payload](sentinel)
    hub = genuine_message_hub()
    optimizer = {'state': {0: {'step': torch.tensor(3.0), 'exp_avg': torch.zeros(2)}},
                 'param_groups': [{'lr': 1e-3, 'params': [0]}]}
    checkpoint = {'meta': {'iter': 3, 'epoch': 0}, 'state_dict': state_dict,
                  'message_hub': hub, 'optimizer': optimizer}
    if place == 'top_level':
        checkpoint['meta']['extra'] = evil
    elif place == 'message_hub':
        hub['log_scalars']['train/loss'].__dict__['_log_history'] = evil
    else:
        optimizer['state'][0]['exp_avg'] = evil
    torch.save(checkpoint, path)
    if os.path.exists(sentinel):
        raise AssertionError('writing the crafted file ran its payload')
    return str(path)
