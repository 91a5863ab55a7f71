"""Two-process runs of dist_train.sh / dist_test.sh end cleanly beside a busy CPU.

A gloo process group left to the interpreter's exit keeps its worker threads
('pt_gloo_runloop'), and one of them releasing the last collectives' tensors while
the interpreter finalizes aborts the process after a finished run ("terminate
called without an active exception", SIGABRT). That race is rare and needs load,
so besides every run exiting 0 beside a busy loop, each rank reports the gloo
threads still alive when its interpreter starts to finalize (from an atexit hook
in a sitecustomize module): there must be none.
"""
import os.path as osp
import re
import socket
import subprocess
import sys

import pytest

from gfnet_dense.datasets.demo import make_ade20k_demo
from helpers import DEMO_CONFIG, data_options, run_tool

RUNS = 2  # of each tool: a run takes 30-60 s on 2 busy cores
LOAD_SECONDS = 300  # the busy loop stops itself then, and is killed when the test ends
FAST = ['train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'val_dataloader.persistent_workers=False',
        'test_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'test_dataloader.num_workers=0']
TRAIN = ['train_cfg.max_iters=1', 'train_cfg.val_interval=1',
         'default_hooks.checkpoint.interval=1']
# runs after threading's shutdown, right before the interpreter finalizes
EXIT_REPORT = r'''import atexit, os, sys

def _report():
    names = [open(f'/proc/self/task/{t}/comm').read().strip()
             for t in os.listdir('/proc/self/task')]
    sys.stderr.write(f'exit report: rank {os.environ["RANK"]}: gloo threads '
                     f'{names.count("pt_gloo_runloop")}\n')  # one write: one line
    sys.stderr.flush()

if 'RANK' in os.environ and os.path.isdir('/proc/self/task'):
    atexit.register(_report)
'''
REPORT = re.compile(r'exit report: rank (\d+): gloo threads (\d+)')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


@pytest.fixture
def cpu_load():
    busy = f'import time\nend = time.time() + {LOAD_SECONDS}\nwhile time.time() < end: pass'
    proc = subprocess.Popen([sys.executable, '-c', busy])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _problem(out, expect=None):
    """Why a run did not end cleanly (None when it did)."""
    log = out.stdout + out.stderr
    reports = dict(REPORT.findall(out.stderr))
    if out.returncode != 0 or 'terminate called' in log:
        problem = f'exit {out.returncode}'
    elif sorted(reports) != ['0', '1'] or any(n != '0' for n in reports.values()):
        problem = f'gloo threads alive at exit, by rank: {reports}'
    elif expect and expect not in log:
        problem = f'no {expect!r} in the output'
    else:
        return None
    return f'{problem}\n{log[-2000:]}'


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc')
def test_two_process_runs_end_cleanly_under_load(tmp_path, cpu_load):
    root = make_ade20k_demo(str(tmp_path / 'ade20k_demo'), num_train=4, num_val=2)
    (tmp_path / 'site').mkdir()
    (tmp_path / 'site' / 'sitecustomize.py').write_text(EXIT_REPORT)
    env = {'PYTHONPATH': str(tmp_path / 'site')}
    failures = []
    for i in range(RUNS):
        out = run_tool('dist_train.sh', DEMO_CONFIG, '2', '--work-dir', str(tmp_path / f'train{i}'),
                       '--cfg-options', *data_options(root), *FAST, *TRAIN,
                       env=dict(env, PORT=_free_port()), check=False, timeout=300)
        problem = _problem(out)
        failures += [f'dist_train.sh run {i + 1}: {problem}'] if problem else []
    checkpoint = osp.join(tmp_path, 'train0', 'iter_1.pth')
    assert osp.isfile(checkpoint), '\n\n'.join(failures)
    for i in range(RUNS):
        out = run_tool('dist_test.sh', DEMO_CONFIG, checkpoint, '2',
                       '--work-dir', str(tmp_path / f'test{i}'),
                       '--cfg-options', *data_options(root), *FAST,
                       env=dict(env, PORT=_free_port()), check=False, timeout=300)
        problem = _problem(out, expect='mIoU')
        failures += [f'dist_test.sh run {i + 1}: {problem}'] if problem else []
    assert not failures, f'{len(failures)} of {2 * RUNS} runs did not end cleanly:\n\n' + \
        '\n\n'.join(failures)
