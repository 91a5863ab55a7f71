"""gfnet-dense: GFNet / GFNet-H backbones for MMSegmentation and MMDetection.

The environment is made by ``tools/setup_env.sh`` (``make env``): torch first,
then mmcv built from source with its ops, then this package. The pins here and
in ``requirements/constraints.txt`` are the tested set.
"""
from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    'torch==2.11.0',
    'torchvision==0.26.0',
    'mmengine==0.10.7',
    'mmcv==2.1.0',
    'mmsegmentation==1.2.2',
    'mmdet==3.3.0',
    'timm==1.0.31',
    'numpy>=2,<3',
    # imported by mmseg.models but not declared by mmsegmentation 1.2.2
    'ftfy==6.3.1',
    'regex==2026.11.15',
]
TESTS_REQUIRE = ['pytest==9.2.0', 'scikit-learn==1.9.1', 'hypothesis==6.170.27']
# ONNX export and ONNX Runtime inference (tools/export_onnx.py): pip install -e .[deploy]
DEPLOY_REQUIRE = ['onnx==1.23.2', 'onnxscript==0.7.2', 'onnxruntime==1.32.0']

setup(
    name='gfnet_dense',
    version='0.1.0',
    description='Resolution-adaptive GFNet / GFNet-H backbones for OpenMMLab dense prediction',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['gfnet_dense', 'gfnet_dense.*']),
    python_requires='>=3.10',
    install_requires=INSTALL_REQUIRES,
    extras_require={'tests': TESTS_REQUIRE, 'deploy': DEPLOY_REQUIRE},
    license='MIT',
)
