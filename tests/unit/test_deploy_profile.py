"""Per-operator times from ONNX Runtime's profile (gfnet_dense.deploy.profile)."""
import pytest

from gfnet_dense.deploy.profile import operator_totals, top


def _run(ts, dur):
    return {'cat': 'Session', 'name': 'model_run', 'ts': ts, 'dur': dur}


def _kernel(op_type, ts, dur):
    return {'cat': 'Node', 'name': f'node_{op_type}_kernel_time', 'ts': ts, 'dur': dur,
            'args': {'op_name': op_type}}


def test_operator_totals_per_run_after_the_warm_up():
    """Kernel times (microseconds) inside the runs after the skipped one, averaged
    over those runs, in ms; If nodes (whose time holds their subgraph's nodes,
    reported too) and kernels outside any run are left out."""
    events = [_kernel('Cos', 0, 7000),                     # session initialisation
              _run(100, 1000), _kernel('MatMul', 110, 900),  # warm-up
              _run(2000, 1000), _kernel('MatMul', 2010, 400), _kernel('If', 2500, 300),
              _kernel('Add', 2550, 200),                   # inside the If's subgraph
              _run(4000, 1000), _kernel('MatMul', 4010, 600), _kernel('Add', 4700, 100)]
    totals = operator_totals(events, skip_runs=1)
    assert totals == pytest.approx({'MatMul': 0.5, 'Add': 0.15})
    assert operator_totals(events)['MatMul'] == pytest.approx(1900 / 3 / 1e3)
    with pytest.raises(ValueError, match='no run after the first 3'):
        operator_totals(events, skip_runs=3)


def test_top_lists_the_largest_and_the_total():
    lines = top({'MatMul': 5.0, 'Add': 1.0, 'Gelu': 2.0}, count=2).splitlines()
    assert [line.split()[0] for line in lines] == ['MatMul', 'Gelu', '(all)']
    assert lines[-1].split()[1] == '8.0'
