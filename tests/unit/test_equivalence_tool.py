"""tools/check_affnet_equivalence.py's verdict, without the public AFFNet code: a NaN
or inf difference, outputs of different shapes or different parameter counts fail it."""
import math

import pytest
import torch

from helpers import load_tool

tool = load_tool('check_affnet_equivalence')


def _rows(**diffs):
    """Rows shaped like the tool's: a classifier row and a segmentation row."""
    classifier = {'variant': 'affnet_t', 'params_public': 10, 'params_ours': 10,
                  '256x256': diffs.get('cls', 1e-6), '256x256 |logit| max': 3.0,
                  '224x320': 2e-6, '224x320 |logit| max': 3.0}
    segmentation = {'variant': 'deeplabv3 affnet_t (os 8)',
                    '256x256 features': diffs.get('seg', 1e-6), 'map shape': (2, 8, 32, 32)}
    return [classifier, segmentation]


def test_small_finite_differences_pass():
    passed, line = tool.verdict(_rows(), 1e-4)
    assert passed and line.startswith('PASS: largest difference 2e-06')


@pytest.mark.parametrize('where', ['cls', 'seg'])
@pytest.mark.parametrize('value', [math.nan, math.inf, -math.inf])
def test_a_non_finite_difference_fails(where, value):
    passed, line = tool.verdict(_rows(**{where: value}), 1e-4)
    assert not passed and line.startswith('FAIL') and 'non-finite' in line
    assert str(value) in line
    assert max(0.0, math.nan) == 0.0  # why a running maximum let NaN through


def test_a_large_difference_and_different_counts_fail():
    assert not tool.verdict(_rows(cls=1e-3), 1e-4)[0]
    rows = _rows()
    rows[0]['params_ours'] = 11
    passed, line = tool.verdict(rows, 1e-4)
    assert not passed and 'DIFFERENT (affnet_t)' in line


def test_max_diff_is_not_finite_for_non_finite_outputs_or_other_shapes():
    a = torch.zeros(2, 3)
    assert tool.max_diff(a, a + 0.5) == 0.5
    for bad in (math.nan, math.inf):
        b = a.clone()
        b[1, 2] = bad
        assert math.isnan(tool.max_diff(a, b)) and math.isnan(tool.max_diff(b, b))
    assert tool.max_diff(a, torch.zeros(1, 3)) == math.inf  # would broadcast to 0.0
    passed, _ = tool.verdict(_rows(cls=tool.max_diff(a, torch.full((2, 3), math.nan))), 1e-4)
    assert not passed


def test_main_exits_non_zero_on_a_nan_difference(monkeypatch, tmp_path, capsys):
    """The whole main() with the public model builders replaced: NaN outputs print FAIL."""
    (tmp_path / 'affnet').mkdir()
    monkeypatch.setattr(tool, 'check_classifier',
                        lambda arch, sizes, seed: _rows(cls=math.nan)[0])
    monkeypatch.setattr(tool, 'check_segmentation',
                        lambda arch, size, seed, folder: _rows()[1])
    assert tool.main(['--public-root', str(tmp_path), '--variants', 't']) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith('FAIL')
