"""Gradient checkpointing recomputes each block on the path its forward took, also when
backward runs after the ``fast_path`` block has ended (``ops.recompute_contexts``)."""
import pytest
import timm
import torch

import gfnet_dense  # noqa: F401  registers the models
from gfnet_dense import ops

TINY = {'gfnet_h_ti': dict(embed_dims=[16, 32, 48, 64], depths=[1, 1, 2, 1]),
        'gfnet_ti': dict(embed_dim=32, depth=2), 'affnet_et': {}}


@pytest.mark.parametrize('name', sorted(TINY))
@pytest.mark.parametrize('fast', [False, True])
def test_checkpointed_equals_plain_when_backward_runs_outside_the_switch(name, fast):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10, **TINY[name]).train()
    x = torch.randn(2, 3, 64, 64)
    results = []
    for checkpointing in (False, True):
        model.set_grad_checkpointing(checkpointing)
        model.zero_grad()
        with ops.fast_path(fast):
            y = model(x)
        with ops.fast_path(not fast):  # the recomputation must not follow this
            y.square().sum().backward()
        results.append((y.detach(), [p.grad for p in model.parameters()]))
    (y0, g0), (y1, g1) = results
    assert torch.equal(y0, y1)
    assert all(torch.equal(a, b) for a, b in zip(g0, g1))
