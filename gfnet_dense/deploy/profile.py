"""Where the time goes: per-operator times of an ONNX file in ONNX Runtime and of
the PyTorch model it came from, on the same image."""
import collections
import json
import os
import tempfile
from typing import Dict, List

import torch
from torch import nn

from .onnx_export import session_options

#: operators whose kernel time holds the nodes of their subgraphs, which the
#: profiler reports on their own as well
CONTROL_FLOW_OPS = ('If', 'Loop', 'Scan')


def onnx_operator_ms(path: str, image: torch.Tensor, threads: int = 0,
                     runs: int = 3) -> Dict[str, float]:
    """Milliseconds per run spent in each ONNX operator type (ONNX Runtime's
    profiler, kernel times), over ``runs`` runs after one warm-up run."""
    import onnxruntime as ort
    with tempfile.TemporaryDirectory() as folder:
        options = session_options(threads)
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(folder, 'profile')
        session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        feed = {session.get_inputs()[0].name: image.numpy()}
        for _ in range(runs + 1):
            session.run(None, feed)
        with open(session.end_profiling()) as f:
            events = json.load(f)
    return operator_totals(events, skip_runs=1)


def operator_totals(events: List[dict], skip_runs: int = 0) -> Dict[str, float]:
    """Milliseconds per run by operator type from ONNX Runtime profiler ``events``:
    the kernel times of the nodes inside each ``model_run`` after the first
    ``skip_runs``, control-flow nodes left out (``CONTROL_FLOW_OPS``)."""
    runs = sorted((e['ts'], e['ts'] + e['dur']) for e in events
                  if e.get('cat') == 'Session' and e.get('name') == 'model_run')[skip_runs:]
    if not runs:
        raise ValueError(f'the profile holds no run after the first {skip_runs}')
    totals = collections.defaultdict(float)
    for event in events:
        if event.get('cat') != 'Node' or not event.get('name', '').endswith('_kernel_time'):
            continue
        op_type = event['args']['op_name']
        if op_type in CONTROL_FLOW_OPS:
            continue
        if any(start <= event['ts'] <= end for start, end in runs):
            totals[op_type] += event['dur'] / 1e3 / len(runs)
    return dict(totals)


def torch_operator_ms(model: nn.Module, image: torch.Tensor, runs: int = 3) -> Dict[str, float]:
    """Milliseconds per run of self CPU time in each PyTorch operator (torch.profiler)
    over ``runs`` inference runs after one warm-up run."""
    with torch.no_grad():
        model(image)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                model(image)
    return {e.key: e.self_cpu_time_total / 1e3 / runs for e in prof.key_averages()
            if e.self_cpu_time_total > 0}


def top(times: Dict[str, float], count: int = 8) -> str:
    """The ``count`` largest entries and the total, one line each."""
    rows = sorted(times.items(), key=lambda kv: -kv[1])
    lines = [f'  {name:32s} {ms:9.1f} ms' for name, ms in rows[:count]]
    lines.append(f'  {"(all)":32s} {sum(times.values()):9.1f} ms')
    return '\n'.join(lines)
