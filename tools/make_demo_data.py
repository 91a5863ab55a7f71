"""Write the bundled ADE20K-layout demo data set (deterministic, idempotent).

    python tools/make_demo_data.py [--root data/ade20k_demo]
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from gfnet_dense.demo_data import make_ade20k_demo  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--root', default='data/ade20k_demo')
    parser.add_argument('--num-train', type=int, default=32)
    parser.add_argument('--num-val', type=int, default=8)
    args = parser.parse_args(argv)
    print(make_ade20k_demo(args.root, args.num_train, args.num_val))


if __name__ == '__main__':
    main()
