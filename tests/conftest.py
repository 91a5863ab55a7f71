import os.path as osp
import sys

import pytest
import torch

# helpers.py and crafted.py sit beside this file; tests in subfolders import them
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: end-to-end runs of the tools (tests/integration '
                            'and a few more); `make test-fast` leaves them out')
    config.addinivalue_line('markers', 'needs_registry: needs a package from a registry (PyPI, '
                            'Debian; cached after the first run); fails, never skips, when it '
                            'cannot be had; `make test-fast` leaves them out')


def pytest_collection_modifyitems(config, items):
    for item in items:
        if f'{osp.sep}integration{osp.sep}' in str(item.fspath):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
