"""Checks the tools run before building or running a model.

``check_model_widths(cfg)``: the backbone's output channels, computed from the
arch tables without building anything, must be what the neck or heads take.

``check_checkpoint_fits(model, checkpoint)``: the weights MMEngine is about to
load (it loads non-strictly: a checkpoint that does not fit would leave a random
model) must match the model exactly, or every offending key is listed.
"""
import inspect
import os.path as osp
import re
from typing import List, Optional, Union

import torch

from ..checkpoints import (CheckpointMismatchError, check_finite, check_training_state,
                           mismatch_report, read_checkpoint, show_keys)
from ..models import AFFNET_ARCHS, GFNET_ARCHS, GFNET_H_ARCHS
from .arg_checks import check_backbone_args
from .backbones import AFFNet, GFNet, GFNetH

# backbone type: (class, arch table, key of its widths)
BACKBONES = {'GFNetH': (GFNetH, GFNET_H_ARCHS, 'embed_dims'),
             'GFNet': (GFNet, GFNET_ARCHS, 'embed_dim'),
             'AFFNet': (AFFNet, AFFNET_ARCHS, 'widths')}


def _default(cls, name):
    return inspect.signature(cls).parameters[name].default


def backbone_widths(backbone: dict) -> Optional[List[int]]:
    """Channels of each output of a GFNetH / GFNet / AFFNet backbone config, from the
    arch tables, or of a TimmFeatures one, from its timm model built without weights;
    None for other backbones and archs the build itself will refuse."""
    kind = str(backbone.get('type', '')).split('.')[-1]
    if kind == 'TimmFeatures':
        from .timm_features import TimmFeatures
        args = {k: backbone[k] for k in ('model_name', 'out_indices', 'in_channels')
                if k in backbone}
        return TimmFeatures(**args).out_channels if 'model_name' in args else None
    if kind not in BACKBONES:
        return None
    check_backbone_args(kind, backbone)  # ill-typed keys fail here, named, before anything runs
    cls, table, key = BACKBONES[kind]
    arch = backbone.get('arch', _default(cls, 'arch'))
    settings = table.get(arch.lower()) if isinstance(arch, str) else arch
    if not isinstance(settings, dict) or key not in settings:
        return None
    out_indices = backbone.get('out_indices', _default(cls, 'out_indices'))
    if cls is GFNet:  # isotropic: out_indices are blocks, all of width embed_dim
        depth = settings.get('depth', 0)
        if out_indices is None:
            out_indices = [(k + 1) * depth // 4 - 1 for k in range(4)]
        dims, what = [settings[key]] * depth, 'block'
    else:
        dims, what = list(settings[key]), 'stage'
    out_indices = [out_indices] if isinstance(out_indices, int) else list(out_indices)
    for i in out_indices:
        if not -len(dims) <= i < len(dims):
            raise ValueError(f'model.backbone ({kind}, arch={arch!r}): out_indices entry {i} '
                             f'is out of range for {len(dims)} {what}s')
    return [dims[i] for i in sorted({i % len(dims) for i in out_indices})]


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def _head_problems(key: str, head, widths: List[int]) -> List[str]:
    """Mismatches of a head (or list of cascade heads) reading backbone outputs by in_index."""
    if isinstance(head, (list, tuple)):
        return [p for i, h in enumerate(head) for p in _head_problems(f'{key}.{i}', h, widths)]
    if not isinstance(head, dict) or 'in_channels' not in head:
        return []
    in_index = _as_list(head.get('in_index', -1))
    picks = in_index if isinstance(in_index, list) else [in_index]
    if any(not -len(widths) <= i < len(widths) for i in picks):
        return [f'{key}.in_index = {in_index} is out of range for the backbone\'s '
                f'{len(widths)} outputs']
    expected = [widths[i] for i in picks] if isinstance(in_index, list) else widths[in_index]
    have = _as_list(head['in_channels'])
    if have == expected:
        return []
    return [f'{key}.in_channels = {have} (in_index {in_index}); the backbone gives {expected}']


def check_model_widths(cfg) -> None:
    """Fail before building when the backbone's output widths do not feed the neck / heads."""
    model = cfg.get('model') or {}
    if isinstance(model.get('module'), dict):  # a TTA model wrapping the real one
        model = model['module']
    backbone = model.get('backbone')
    widths = backbone_widths(backbone) if isinstance(backbone, dict) else None
    if widths is None:
        return
    neck = model.get('neck')
    if isinstance(neck, dict) and 'in_channels' in neck:
        have = _as_list(neck['in_channels'])
        problems = [] if have == widths else \
            [f'model.neck.in_channels = {have}; the backbone gives {widths}']
    elif neck:
        return  # a neck we cannot read: it decides what the heads get
    else:
        problems = [p for key in ('decode_head', 'auxiliary_head')
                    for p in _head_problems(f'model.{key}', model.get(key), widths)]
    if problems:
        settings = {k: backbone[k] for k in ('type', 'arch', 'out_indices') if k in backbone}
        raise ValueError(
            f'model.backbone {settings} outputs {"/".join(map(str, widths))} channels, '
            'which the config does not expect:\n  ' + '\n  '.join(problems) +
            '\nchange those keys to the backbone\'s widths (e.g. --cfg-options '
            'model.neck.in_channels=[...] / model.decode_head.in_channels=[...] / '
            'model.auxiliary_head.in_channels=N), or choose the backbone the config was '
            'written for')


# --------------------------------------------------------------------------- checkpoints
def unwrap_model(model):
    """The model whose state dict MMEngine loads: without DDP / TTA wrappers."""
    from mmengine.model import BaseTTAModel, is_model_wrapper
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def checkpoint_to_check(cfg) -> Optional[str]:
    """The file a runner built from ``cfg`` will load: ``load_from``, or with
    ``resume`` and no ``load_from`` the latest checkpoint in the work dir."""
    if cfg.get('load_from'):
        return cfg.load_from
    if cfg.get('resume'):
        from mmengine.runner import find_latest_checkpoint
        return find_latest_checkpoint(cfg.work_dir)
    return None


def check_checkpoint_fits(model, checkpoint: Union[str, dict], resume: bool = False,
                          path: Optional[str] = None) -> None:
    """Raise ``CheckpointMismatchError`` unless MMEngine would load every weight of
    ``model`` from ``checkpoint`` (a file, or a loaded dict read from ``path``).

    As MMEngine: the weights are ``checkpoint['state_dict']`` (else the dict
    itself) with ``module.`` prefixes removed, loaded into the model inside any
    DDP / TTA wrapper. ``data_preprocessor`` buffers may be missing (the config
    sets them). ``resume``: the file must also hold MMEngine's training state.
    """
    if isinstance(checkpoint, str):
        path, checkpoint = checkpoint, read_checkpoint(checkpoint)
    name = f'checkpoint {path!r}' if path else 'the checkpoint'
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatchError(f'{name} holds a {type(checkpoint).__name__}, '
                                      'not a checkpoint dict')
    hint = ''
    if 'state_dict' in checkpoint:
        state = checkpoint['state_dict']
    elif isinstance(checkpoint.get('model'), dict):
        state = checkpoint['model']
        hint = ("\nits weights are under 'model' (a released, tools/pretrain.py or "
                "tools/convert_checkpoint.py file), where MMEngine does not look for them")
    else:
        state = checkpoint
    _check_state_dict(state, name)
    model = unwrap_model(model)
    targets = model.state_dict()
    preprocessor = [k for k in targets if k.startswith('data_preprocessor.')]
    state = {k: v for k, v in _strip_module(state).items()
             if k in targets or not k.startswith('data_preprocessor.')}
    parts = {k.split('.')[0] for k in targets}
    if not any(k.split('.')[0] in parts for k in state):
        hint += ('\nnone of its keys belong to the model\'s parts '
                 f'({", ".join(sorted(parts))}): it holds backbone or classifier weights, '
                 'not a whole model. Pretrained backbone weights go in '
                 'model.backbone.init_cfg.checkpoint (tools/train.py starts from them); '
                 'testing and resuming need a checkpoint written by tools/train.py')
    report = mismatch_report(targets, state, preprocessor,
                             f'the config\'s model ({type(model).__name__})')
    if report is None and hint:
        report = 'MMEngine would load none of its weights'
    if report:
        raise CheckpointMismatchError(f'{name}: {report}{hint}')
    check_finite(state, name)
    if resume and not {'meta', 'message_hub'} <= set(checkpoint):
        raise CheckpointMismatchError(
            f'{name} holds weights but no training state (MMEngine\'s meta, message_hub): '
            'it was not written by tools/train.py, so training cannot resume from it. '
            f'To start a new run from its weights use --cfg-options load_from={path or "PATH"}')
    if resume:
        check_training_state({k: checkpoint.get(k) for k in ('optimizer', 'param_schedulers')},
                             path or 'the checkpoint')


def _check_state_dict(state, name: str) -> None:
    """A state dict maps string names to dense tensors; say which entries do not."""
    if not isinstance(state, dict):
        raise CheckpointMismatchError(f'{name}: its state dict is a {type(state).__name__}, '
                                      'not a dict of tensors')
    bad = [k for k, v in state.items() if not isinstance(k, str)
           or not isinstance(v, torch.Tensor) or v.layout != torch.strided]
    if bad:
        raise CheckpointMismatchError(
            f'{name}: {len(bad)} state dict entries are not string keys with dense tensors '
            f'({show_keys(bad)}); it is not a model\'s weights')


def _strip_module(state: dict) -> dict:
    return {re.sub(r'^module\.', '', k): v for k, v in state.items()}


def check_run_checkpoint(runner, cfg) -> None:
    """Check the checkpoint a built runner will load or resume from, before it runs."""
    path = checkpoint_to_check(cfg)
    if path:
        check_checkpoint_fits(runner.model, osp.expanduser(path), resume=bool(cfg.get('resume')))


def load_checked(model, path: str) -> dict:
    """Load a checkpoint file into ``model`` once ``check_checkpoint_fits`` passes; return it."""
    checkpoint = read_checkpoint(path)
    check_checkpoint_fits(model, checkpoint, path=path)
    state = _strip_module(checkpoint.get('state_dict', checkpoint))
    unwrap_model(model).load_state_dict(state, strict=False)  # checked; buffers may be missing
    return checkpoint
