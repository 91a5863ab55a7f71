"""One-line checks of the OpenMMLab backbones' arguments, before anything is built.

``--cfg-options model.backbone.frozen_stages=abc`` or ``pretrain_img_size=-32``
otherwise fail deep inside the network (``'<=' not supported``, ``negative
dimension``) or, worse, build something odd (``drop_path_rate=1.5``,
``with_cp='no'``, ``in_channels=0``). The backbones call ``check_backbone_args``
at the top of ``__init__``, so MMSeg's and MMDet's own tools get the same errors:

    model.backbone (GFNetH): frozen_stages must be an int in [-1, 4], got 'abc' (str)

Arguments not given are not checked; of an ``arch`` dict's own entries only
GFNet's ``depth`` is (it sets the block count; the networks check the rest).
"""
import math
import numbers
from typing import Any, Dict, Optional

from ..cli import InputError
from ..layers import FILTER_RESIZE_MODES
from ..models.affnet import AFF_DEPTHS, AFFNET_ARCHS, MV2_DEPTHS
from ..models.gfnet import GFNET_ARCHS, GFNET_H_ARCHS, GFNET_H_PATCH_SIZES
from ..models.variants import resolve_arch


class BackboneArgumentError(InputError, TypeError):
    """A backbone argument of the wrong type or out of range (a ValueError and a TypeError,
    as the checks it replaces raised either)."""


# kind: (arch table, keys an arch dict needs, what out_indices / frozen_stages count)
_KINDS = {
    'GFNetH': (GFNET_H_ARCHS, ('embed_dims', 'depths'), 'stage'),
    'GFNet': (GFNET_ARCHS, ('embed_dim', 'depth'), 'block'),
    'AFFNet': (AFFNET_ARCHS, ('widths', 'expand_ratio'), 'stage'),
}


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def _got(value) -> str:
    return f'got {value!r} ({type(value).__name__})'


def _count(kind: str, settings: dict, fail) -> int:
    """Stages (GFNetH, AFFNet: fixed, the networks check an arch dict's lengths) or blocks
    (GFNet) of the resolved variant."""
    if kind == 'GFNetH':
        return len(GFNET_H_PATCH_SIZES)
    if kind == 'AFFNet':
        return len(MV2_DEPTHS) + len(AFF_DEPTHS)
    depth = settings['depth']
    if not (_is_int(depth) and depth >= 1):
        fail(f"arch['depth'] must be a positive int, {_got(depth)}")
    return int(depth)


def check_backbone_args(kind: str, args: Dict[str, Any]) -> None:
    """Raise ``BackboneArgumentError`` naming the first ill-typed or out-of-range argument
    of backbone ``kind`` (``'GFNetH'``, ``'GFNet'``, ``'AFFNet'``); ``args`` maps argument
    names to values (a constructor's arguments, or a config's ``model.backbone`` keys)."""
    table, required, what = _KINDS[kind]

    def fail(message: str):
        raise BackboneArgumentError(f'model.backbone ({kind}): {message}')

    arch = args.get('arch', 's')
    try:
        settings = resolve_arch(arch, table, required)
    except (TypeError, ValueError) as err:
        fail(str(err))
    count = _count(kind, settings, fail)

    def check(name: str, ok, must: str):
        if name in args and not ok(args[name]):
            fail(f'{name} must be {must}, {_got(args[name])}')

    check('in_channels', lambda v: _is_int(v) and v >= 1, 'a positive int')
    check('pretrain_img_size',
          lambda v: (_is_int(v) and v >= 1) or (
              isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_int(s) and s >= 1
                                                                  for s in v)),
          'a positive int or a pair (H, W) of positive ints')
    check('frozen_stages', lambda v: _is_int(v) and -1 <= v <= count,
          f'an int in [-1, {count}]')
    check('norm_eval', lambda v: isinstance(v, bool), 'True or False')
    check('with_cp', lambda v: isinstance(v, bool), 'True or False')
    check('drop_path_rate', lambda v: v is None or (_is_real(v) and 0 <= v < 1),
          'a number in [0, 1) (or None: the variant\'s own rate)')
    check('mlp_ratio', lambda v: _is_real(v) and v > 0, 'a positive number')
    check('output_stride', lambda v: _is_int(v) and v in (8, 16, 32), '8, 16 or 32')
    if 'filter_resize' in args and args['filter_resize'] not in FILTER_RESIZE_MODES:
        value = args['filter_resize']
        shown = repr(value) if isinstance(value, str) else f'{value!r} ({type(value).__name__})'
        fail(f'unknown filter_resize mode {shown}; choose one of '
             f'{", ".join(map(repr, FILTER_RESIZE_MODES))}')
    _check_out_indices(args, count, what, fail, none_ok=kind == 'GFNet')


def _check_out_indices(args: dict, count: int, what: str, fail, none_ok: bool) -> None:
    if 'out_indices' not in args:
        return
    value = args['out_indices']
    if value is None and none_ok:
        return
    entries: Optional[list] = [value] if _is_int(value) else (
        list(value) if isinstance(value, (list, tuple)) else None)
    must = (f'an int or a non-empty list of ints in [{-count}, {count - 1}] '
            f'({count} {what}s)')
    if not entries or not all(_is_int(i) for i in entries):
        fail(f'out_indices must be {must}, {_got(value)}')
    for i in entries:
        if not -count <= i < count:
            fail(f'out_indices entry {i} is out of range for {count} {what}s: entries must be '
                 f'ints in [{-count}, {count - 1}], got {value!r}')
