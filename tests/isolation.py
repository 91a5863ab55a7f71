"""Run one call in a forked child, bounded, and report how it ended.

The child gets ``RLIMIT_DATA`` (``RLIMIT_AS`` would trip on torch's address-space
reservations) and an alarm; the parent reads back the outcome, the child's peak
memory growth (from its own rusage, over the resident size it started with) and
whether it died of a signal. Importing torch once and forking per case keeps
each case cheap.
"""
import json
import os
import resource
import signal
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch


@dataclass
class Outcome:
    kind: str                 # 'ok', 'refused' (an exception), 'signal' or 'timeout'
    message: str = ''
    error: str = ''           # the exception's class name
    signal: Optional[int] = None
    growth_mib: float = 0.0   # peak resident memory over the child's starting size
    seconds: float = 0.0


def _rss_kib() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') // 1024


def run_isolated(fn: Callable[[], object], timeout_s: int = 60,
                 data_limit_mib: int = 4096) -> Outcome:
    """``fn()`` in a child process: 'ok' if it returns, 'refused' if it raises."""
    read_end, write_end = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read_end)
            torch.set_num_threads(1)
            signal.alarm(timeout_s)
            soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
            with open('/proc/self/status') as f:
                data_kib = next(int(line.split()[1]) for line in f if line.startswith('VmData'))
            limit = (data_kib + data_limit_mib * 1024) * 1024
            resource.setrlimit(resource.RLIMIT_DATA, (min(limit, hard) if hard > 0 else limit,
                                                      hard))
            base = _rss_kib()
            try:
                fn()
                result = {'kind': 'ok'}
            except BaseException as err:  # noqa: BLE001  (reported, not raised)
                result = {'kind': 'refused', 'message': str(err)[:20000],
                          'error': type(err).__name__}
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            result['growth_mib'] = max(0, peak - base) / 1024
            os.write(write_end, json.dumps(result).encode())
        except BaseException:  # noqa: BLE001
            code = 3
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    while True:
        chunk = os.read(read_end, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    _, status, _ = os.wait4(pid, 0)
    seconds = time.monotonic() - start
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        kind = 'timeout' if sig == signal.SIGALRM else 'signal'
        return Outcome(kind, signal=sig, seconds=seconds)
    data = json.loads(b''.join(chunks) or b'{"kind": "signal", "message": "no result"}')
    return Outcome(seconds=seconds, **data)
