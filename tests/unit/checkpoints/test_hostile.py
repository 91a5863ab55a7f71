"""Hostile files through the one loader: each class refused cleanly (an exception
naming the problem, no signal, no hang), in bounded time and memory."""
import os

import pytest
import torch

from crafted import HOSTILE
from gfnet_dense import GFNetH
from gfnet_dense.checkpoints import (CheckpointMismatchError, adapt_state_dict, read_checkpoint,
                                     show_keys)
from gfnet_dense.checkpoints.cvnets import cvnets_to_ours
from isolation import run_isolated

TINY_H = dict(embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1], layer_scale_init=1e-2)
# the documented bound: 256 MiB + 3x the file + the model (tiny here)
BASE_MIB = 256


def _load_for_use(path):
    """What a tool does: read, then fit to a model (finite check included)."""
    model = GFNetH(arch=TINY_H)
    adapt_state_dict(read_checkpoint(path), model)


@pytest.fixture(scope='module')
def tiny_state():
    return GFNetH(arch=TINY_H).state_dict()


@pytest.mark.parametrize('name', sorted(HOSTILE))
def test_hostile_file_is_refused_within_bounds(name, tiny_state, tmp_path):
    writer, phrase = HOSTILE[name]
    path = writer(tmp_path / 'hostile.pth', tiny_state)
    size_mib = os.path.getsize(path) / 2 ** 20
    outcome = run_isolated(lambda: _load_for_use(path), timeout_s=30)
    assert outcome.kind == 'refused', outcome
    assert phrase in outcome.message, outcome.message
    assert '\n' not in outcome.message and len(outcome.message) < 1000, outcome.message
    assert outcome.growth_mib < BASE_MIB + 3 * size_mib, outcome
    assert outcome.seconds < 20, outcome


def test_genuine_file_loads_in_the_harness(tiny_state, tmp_path):
    """The harness itself: a genuine file comes back 'ok' (so 'refused' above means something)."""
    path = str(tmp_path / 'genuine.pth')
    torch.save({'state_dict': tiny_state}, path)
    assert run_isolated(lambda: _load_for_use(path)).kind == 'ok'


def test_huge_stored_filter_grid_is_refused(tiny_state):
    """A filter claiming a 12000-row grid would cost a float64 eye(12000) to resize."""
    state = dict(tiny_state)
    key = next(k for k in state if k.endswith('complex_weight'))
    channels = state[key].shape[2]
    state[key] = torch.zeros(12000, 2, channels, 2)
    with pytest.raises(CheckpointMismatchError, match='more than 8x'):
        adapt_state_dict(state, GFNetH(arch=TINY_H))


def test_fine_tuned_at_1024_loads_at_224():
    """4.6x per side is a real use (a 1024 checkpoint at 224) and stays legal."""
    big = GFNetH(arch=TINY_H, pretrain_img_size=1024).state_dict()
    model = GFNetH(arch=TINY_H)
    model.load_state_dict(adapt_state_dict(big, model))


@pytest.mark.parametrize('keys', [[1, 2], [('a',), 'b']])
def test_state_dicts_with_non_string_keys_are_refused(keys):
    with pytest.raises(CheckpointMismatchError, match='not strings'):
        adapt_state_dict({k: torch.zeros(1) for k in keys}, GFNetH(arch=TINY_H))


def test_sparse_and_list_state_dicts_are_refused():
    with pytest.raises(CheckpointMismatchError, match='sparse'):
        adapt_state_dict({'w': torch.eye(3).to_sparse()}, GFNetH(arch=TINY_H))
    with pytest.raises(CheckpointMismatchError, match='got list'):
        adapt_state_dict([torch.zeros(1)], GFNetH(arch=TINY_H))


def test_keys_are_escaped_and_cut():
    text = show_keys(['\x1b[31mred'] + [f'k{i}' for i in range(200_000)])
    assert '\x1b' not in text and '\\x1b[31mred' in text
    assert text.endswith('... and 199981 more') and len(text) < 1000


def test_cvnets_key_mapping_is_linear():
    """200k junk keys beside a real layout: the old mapping was quadratic (about 2 h)."""
    state = {f'layer_3.1.global_rep.{i}.junk_{j}.weight': None
             for i in range(2) for j in range(100_000)}
    state['conv_1.block.conv.weight'] = None
    outcome = run_isolated(lambda: cvnets_to_ours(state), timeout_s=60)
    assert outcome.kind == 'ok' and outcome.seconds < 30, outcome


def _adamw_state():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    return optimizer.state_dict()


def _poisoned(edit):
    state = _adamw_state()
    edit(state)
    return state


POISONED_OPTIMIZERS = {
    'nan_lr': (lambda s: s['param_groups'][0].update(lr=float('nan')), 'lr is nan'),
    'string_lr': (lambda s: s['param_groups'][0].update(lr='abc'), 'lr is str'),
    'inf_moment': (lambda s: s['state'][0]['exp_avg'].fill_(float('inf')), 'NaN or Inf'),
    'nan_step': (lambda s: s['state'][0]['step'].fill_(float('nan')), 'NaN or Inf'),
    'bad_betas': (lambda s: s['param_groups'][0].update(betas=(0.9,)), 'not two numbers'),
}


@pytest.mark.parametrize('name', sorted(POISONED_OPTIMIZERS))
def test_poisoned_optimizer_state_is_refused_before_the_first_step(name):
    from gfnet_dense.checkpoints import check_training_state
    edit, phrase = POISONED_OPTIMIZERS[name]
    with pytest.raises(CheckpointMismatchError, match=phrase):
        check_training_state({'optimizer': _poisoned(edit)}, 'run.pth')


def test_genuine_training_states_pass_including_infinite_best():
    """What torch, timm and MMEngine schedulers really hold, ReduceLROnPlateau's infinite
    ``best`` included."""
    from mmengine.optim import CosineAnnealingLR, OptimWrapper
    from timm.scheduler import create_scheduler_v2

    from gfnet_dense.checkpoints import check_training_state
    params = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    assert plateau.state_dict()['best'] == float('inf')
    timm_scheduler, _ = create_scheduler_v2(optimizer, sched='cosine', num_epochs=2,
                                            warmup_epochs=1, updates_per_epoch=3)
    mm_scheduler = CosineAnnealingLR(OptimWrapper(optimizer), T_max=3)
    check_training_state({'optimizer': _adamw_state(), 'plateau': plateau.state_dict(),
                          'timm': timm_scheduler.state_dict(),
                          'param_schedulers': [mm_scheduler.state_dict()]}, 'run.pth')
    nan_scheduler = dict(timm_scheduler.state_dict(), base_values=[float('nan')])
    with pytest.raises(CheckpointMismatchError, match='base_values'):
        check_training_state({'scheduler': nan_scheduler}, 'run.pth')
