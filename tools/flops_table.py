"""FLOPs (GMACs) of every GFNet, GFNet-H and AFFNet variant by three counters, in Markdown.

For each timm classifier and input size: ``gfnet_dense.flops.count_flops``; mmengine's
``get_model_complexity_info`` (what MMSeg's and MMDet's ``get_flops.py`` call) with
``input_shape=(3, H, W)``; torch's ``FlopCounterMode`` around one call; and the paper's
number where the paper gives one at that size (GFNet / GFNet-H at 224, AFFNet at
256, which is added to the sizes for AFFNet). Each counter gets a fresh model
(the eval caches dropped), in eval, as users run it. ``max dev.`` is the larger
gap of the two tools to ``count_flops``.

Sizes are ``HxW`` or ``N`` for NxN (``gfnet_dense.cli.parse_size``).
``--dense`` adds the dense-prediction models of the configs (UperNet on ADE20K at
512x512, the way MMSeg's ``get_flops.py`` counts it; RetinaNet on COCO at
800x1333 padded to 800x1344, the way MMDet's does); ``--only-dense`` runs those alone.

    python tools/flops_table.py                 # every variant at 224 and 512: ~10 min, 2 cores
    python tools/flops_table.py --models gfnet_h_s --sizes 224
    python tools/flops_table.py --only-dense
"""
import argparse
import time
import warnings
from functools import partial

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

import gfnet_dense  # noqa: F401  (registers the timm models and, with mmengine, gfnet_dense.mm)
from gfnet_dense.cli import parse_size
from gfnet_dense.flop_handles import register_mmengine_handles
from gfnet_dense.flops import count_flops
from gfnet_dense.layers import release_eval_caches

MODELS = ['gfnet_ti', 'gfnet_xs', 'gfnet_s', 'gfnet_b', 'gfnet_h_ti', 'gfnet_h_s', 'gfnet_h_b',
          'affnet_et', 'affnet_t', 'affnet_s']
#: (size, GMACs) of each paper's table
PAPER = {'gfnet_ti': (224, 1.3), 'gfnet_xs': (224, 2.9), 'gfnet_s': (224, 4.5),
         'gfnet_b': (224, 7.9), 'gfnet_h_ti': (224, 2.1), 'gfnet_h_s': (224, 4.6),
         'gfnet_h_b': (224, 8.6), 'affnet_et': (256, 0.4), 'affnet_t': (256, 0.8),
         'affnet_s': (256, 1.5)}
DENSE = [('upernet_gfnet_h_s_ade20k', 'configs/upernet_gfnet_h_s_ade20k.py', 'seg', (512, 512)),
         ('retinanet_gfnet_h_s_fpn_1x_coco', 'configs/retinanet_gfnet_h_s_fpn_1x_coco.py', 'det',
          (800, 1333))]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=MODELS, choices=MODELS)
    parser.add_argument('--sizes', nargs='+', type=parse_size, default=[(224, 224), (512, 512)],
                        metavar='HxW', help='input sizes, HxW or N for NxN (default: 224 512)')
    parser.add_argument('--dense', action='store_true', help='add the UperNet / RetinaNet rows')
    parser.add_argument('--only-dense', action='store_true',
                        help='the UperNet / RetinaNet rows alone')
    return parser.parse_args(argv)


def mmengine_macs(model, **inputs) -> int:
    from mmengine.analysis import get_model_complexity_info
    release_eval_caches(model)
    return get_model_complexity_info(model, show_table=False, show_arch=False, **inputs)['flops']


def flop_counter_macs(model, x) -> int:
    release_eval_caches(model)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def classifier_row(name: str, size) -> dict:
    """The row of the classifier ``name`` at input ``size`` ``(H, W)``."""
    h, w = size
    model = timm.create_model(name).eval()
    x = torch.randn(1, 3, h, w)
    row = dict(model=name, size=f'{h}x{w}', count_flops=count_flops(model, x),
               mmengine=mmengine_macs(model, input_shape=(3, h, w)),
               flop_counter=flop_counter_macs(model, x))
    paper_size, paper = PAPER[name]
    row['paper'] = paper * 1e9 if (paper_size, paper_size) == (h, w) else None
    return row


def build_dense(config: str, kind: str, hw):
    """The model and its input as MMSeg's / MMDet's ``get_flops.py`` make them (MMSeg's
    tool passes both ``input_shape`` and ``inputs``, which mmengine 0.10.7 refuses:
    its fix, open-mmlab/mmsegmentation#3551, passes ``inputs`` alone, as here)."""
    from mmengine import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmseg' if kind == 'seg' else 'mmdet'))
    if kind == 'seg':
        from mmseg.registry import MODELS as registry
        from mmseg.structures import SegDataSample as sample_type
        metainfo = dict(ori_shape=hw, pad_shape=hw)
    else:
        from mmdet.registry import MODELS as registry
        from mmdet.structures import DetDataSample as sample_type
        metainfo = dict(ori_shape=hw, img_shape=hw, pad_shape=hw, scale_factor=(1.0, 1.0))
    model = revert_sync_batchnorm(registry.build(cfg.model))
    if kind == 'seg' and hasattr(model, 'auxiliary_head'):
        model.auxiliary_head = None  # as MMSeg's tool
    batch = dict(inputs=[torch.randint(0, 256, (3, *hw), dtype=torch.uint8)],
                 data_samples=[sample_type(metainfo=metainfo)])
    data = model.data_preprocessor(batch)
    model.eval()
    if kind == 'det':  # as MMDet's tool
        model.forward = partial(model.forward, data_samples=data['data_samples'])
    return model, data['inputs']


def dense_row(name: str, config: str, kind: str, hw) -> dict:
    model, x = build_dense(config, kind, hw)
    return dict(model=name, size=f'{x.shape[-2]}x{x.shape[-1]}', count_flops=count_flops(model, x),
                mmengine=mmengine_macs(model, inputs=x), flop_counter=flop_counter_macs(model, x),
                paper=None)


def markdown(rows) -> str:
    lines = ['| model | size | count_flops GMACs | mmengine GMACs | FlopCounterMode GMACs '
             '| paper GMACs | max dev. |', '|---|---|---|---|---|---|---|']
    for r in rows:
        dev = max(abs(r['mmengine'] / r['count_flops'] - 1),
                  abs(r['flop_counter'] / r['count_flops'] - 1))
        paper = '' if r['paper'] is None else f"{r['paper'] / 1e9:.1f}"
        lines.append(f"| {r['model']} | {r['size']} | {r['count_flops'] / 1e9:.3f} | "
                     f"{r['mmengine'] / 1e9:.3f} | {r['flop_counter'] / 1e9:.3f} | {paper} | "
                     f"{100 * dev:.2f}% |")
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if not register_mmengine_handles():  # gfnet_dense.mm does this on import
        raise SystemExit('mmengine is not the version whose default op table holds the FFT '
                         'handles: see gfnet_dense.flop_handles')
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel('ERROR')  # mmengine's unsupported-op lists
    warnings.filterwarnings('ignore')
    jobs = []
    if not args.only_dense:
        for name in args.models:
            paper_size = (PAPER[name][0],) * 2
            sizes = sorted(set(args.sizes) | {paper_size} if name.startswith('affnet')
                           else set(args.sizes))
            jobs += [partial(classifier_row, name, size) for size in sizes]
    if args.dense or args.only_dense:
        jobs += [partial(dense_row, *spec) for spec in DENSE]
    rows = []
    for job in jobs:
        start = time.time()
        rows.append(job())  # the fast path turns itself off under tracing and FlopCounterMode
        print(f"{rows[-1]['model']} {rows[-1]['size']}: {time.time() - start:.0f} s", flush=True)
    print(markdown(rows))


if __name__ == '__main__':
    main()
