"""Running the project's tools in fresh processes, as users do; shared test helpers."""
import glob
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

from torch.utils._python_dispatch import TorchDispatchMode

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(ROOT, 'configs/demo/upernet_gfnet_h_ti_ade20k_demo.py')


def load_tool(name):
    """``tools/<name>.py`` imported as a module (its functions, without a subprocess)."""
    path = osp.join(ROOT, 'tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(*args, check=True, env=None, timeout=900):
    """Run ``python tools/<args>`` (or a shell script) from the repository root."""
    cmd = list(args)
    if cmd[0].endswith('.py'):
        cmd = [sys.executable, osp.join(ROOT, 'tools', cmd[0])] + cmd[1:]
    else:
        cmd = ['bash', osp.join(ROOT, 'tools', cmd[0])] + cmd[1:]
    full_env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1', **(env or {}))
    proc = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}')
    return proc


def data_options(root):
    return [f'{loader}.dataset.data_root={root}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]


def scalars(work_dir):
    """All logged scalar records of the newest run in ``work_dir``."""
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    assert files, f'no scalars.json under {work_dir}'
    with open(files[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_tiny_coco(root, num_train=4, num_val=2, classes=('square', 'triangle'), seed=0):
    """A COCO-format data set: coloured squares and triangles with boxes and polygons."""
    import numpy as np
    from PIL import Image, ImageDraw
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    for split, count in (('train', num_train), ('val', num_val)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            width, height = int(rng.integers(200, 320)), int(rng.integers(140, 220))
            image = Image.new('RGB', (width, height), (100, 110, 120))
            draw = ImageDraw.Draw(image)
            for _ in range(int(rng.integers(1, 4))):
                label = int(rng.integers(len(classes)))
                size = int(rng.integers(30, 60))
                x, y = int(rng.integers(0, width - size)), int(rng.integers(0, height - size))
                if label == 0:
                    poly = [x, y, x + size, y, x + size, y + size, x, y + size]
                else:
                    poly = [x, y + size, x + size // 2, y, x + size, y + size]
                draw.polygon(poly, fill=(230, 40, 40) if label == 0 else (40, 220, 60))
                xs, ys = poly[0::2], poly[1::2]
                annotations.append(dict(
                    id=len(annotations) + 1, image_id=i + 1, category_id=label + 1,
                    bbox=[min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
                    area=float((max(xs) - min(xs)) * (max(ys) - min(ys))),
                    segmentation=[[float(v) for v in poly]], iscrowd=0))
            name = f'{split}_{i:03d}.jpg'
            image.save(osp.join(root, split, name))
            images.append(dict(id=i + 1, file_name=name, width=width, height=height))
        categories = [dict(id=k + 1, name=c) for k, c in enumerate(classes)]
        with open(osp.join(root, 'annotations', f'{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)
    return root


def write_image_folder(root, classes=3, per_class=(8, 4), size=64, seed=0):
    """ImageNet layout with coloured noise images: train/<class>/*.png, val/<class>/*.png."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    for split, count in zip(('train', 'val'), per_class):
        for c in range(classes):
            folder = osp.join(root, split, f'class_{c}')
            os.makedirs(folder, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 60, (size, size, 3)) + np.array([60 * c, 40, 200 - 60 * c])
                Image.fromarray(pixels.clip(0, 255).astype('uint8')).save(
                    osp.join(folder, f'{i}.png'))
    return root


def write_digits_folder(root, size=32):
    """scikit-learn's handwritten digits (1797 real 8x8 scans) as an upsampled ImageFolder."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    digits = load_digits()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(digits.images))
    val = set(order[:360].tolist())
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        split = 'val' if i in val else 'train'
        folder = osp.join(root, split, str(label))
        os.makedirs(folder, exist_ok=True)
        gray = (image / 16.0 * 255).astype('uint8')
        Image.fromarray(gray).resize((size, size), Image.BICUBIC).convert('RGB').save(
            osp.join(folder, f'{i}.png'))
    return root


def backbone_out_channels(backbone):
    """Channels of each output of a GFNetH / GFNet / AFFNet backbone."""
    dims = getattr(backbone, 'embed_dims', None) or getattr(backbone, 'widths', None)
    if dims is None:  # isotropic GFNet: out_indices are block indices
        return [backbone.embed_dim] * len(backbone.out_indices)
    return [dims[i] for i in backbone.out_indices]



class CountOps(TorchDispatchMode):
    """``with CountOps() as ops:`` counts the calls of each aten / mkldnn op below
    it in ``ops.counts`` (op packet name -> calls)."""

    def __init__(self):
        super().__init__()
        self.counts = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket)
        self.counts[name] = self.counts.get(name, 0) + 1
        return func(*args, **(kwargs or {}))
