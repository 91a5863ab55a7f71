"""Write the demo data sets (deterministic, idempotent).

    python tools/make_demo_data.py --brain-lobes [--root data/brain_lobes_demo]
    python tools/make_demo_data.py [--root data/ade20k_demo] [--num-train 32] [--num-val 8]

``--brain-lobes`` regenerates the bundle that ``make demo`` trains on (by default the
repository's data/brain_lobes_demo) from the Debian package mricron-data (fetched into
the cache on first use; see gfnet_dense/datasets/aal.py). Without it: the synthetic
ADE20K-layout set the tests use (by default data/ade20k_demo under the current folder).
"""
import argparse
import os.path as osp

from gfnet_dense.datasets.demo import make_ade20k_demo, make_brain_lobes_demo

#: the bundled brain-lobe slices that ``make demo`` trains on (tracked in git)
BRAIN_LOBES_DEMO = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'data',
                            'brain_lobes_demo')
ADE20K_DEMO = 'data/ade20k_demo'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--brain-lobes', action='store_true',
                        help=f'regenerate the brain-lobe demo bundle (default root '
                        f'{osp.relpath(BRAIN_LOBES_DEMO)})')
    parser.add_argument('--root', help=f'output folder (default {ADE20K_DEMO}, or the '
                        'bundle with --brain-lobes)')
    parser.add_argument('--num-train', type=int, default=32)
    parser.add_argument('--num-val', type=int, default=8)
    args = parser.parse_args(argv)
    if args.brain_lobes:
        print(make_brain_lobes_demo(args.root or BRAIN_LOBES_DEMO))
    else:
        print(make_ade20k_demo(args.root or ADE20K_DEMO, args.num_train, args.num_val))


if __name__ == '__main__':
    main()
