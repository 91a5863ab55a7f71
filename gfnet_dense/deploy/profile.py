"""Where the time goes: per-operator times of an ONNX file in ONNX Runtime and of
the PyTorch model it came from, on the same image."""
import collections
import json
import os
from typing import Dict

import torch
from torch import nn


def onnx_operator_ms(path: str, image: torch.Tensor, threads: int = 0,
                     runs: int = 3) -> Dict[str, float]:
    """Milliseconds per run spent in each ONNX operator type (ONNX Runtime's
    profiler, kernel times), over ``runs`` runs after one warm-up run."""
    import onnxruntime as ort
    from .onnx_export import session_options
    options = session_options(threads)
    options.enable_profiling = True
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    feed = {session.get_inputs()[0].name: image.numpy()}
    for _ in range(runs + 1):
        session.run(None, feed)
    events = _kernel_events(session.end_profiling())
    per_run = len(events) // (runs + 1)  # every run of one input runs the same kernels
    totals = collections.defaultdict(float)
    for event in events[per_run:]:  # the first run warms up
        totals[event['args']['op_name']] += event['dur'] / 1e3 / runs
    return dict(totals)


def _kernel_events(profile_file: str):
    with open(profile_file) as f:
        events = json.load(f)
    os.remove(profile_file)
    return [e for e in events
            if e.get('cat') == 'Node' and e.get('name', '').endswith('_kernel_time')]


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
