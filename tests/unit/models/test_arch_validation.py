"""Custom arch dicts with the wrong number of stages are refused, naming the problem."""
import pytest

from gfnet_dense import AFFNet, GFNetH
from gfnet_dense.models.affnet import AFFNetTrunk
from gfnet_dense.models.gfnet import HierarchicalGFNet


@pytest.mark.parametrize('dims,depths', [
    ((8, 16, 24), (1, 1, 1)),                 # 3 stages: zip used to drop the 4th silently
    ((8, 16, 24, 32, 40), (1, 1, 1, 1, 1)),   # 5 stages
    ((8, 16, 24, 32), (1, 1, 1)),             # lengths disagree
])
def test_gfnet_h_needs_four_stages(dims, depths):
    match = r'GFNet-H has 4 stages .*embed_dims and depths need 4 entries each'
    with pytest.raises(ValueError, match=match):
        GFNetH(arch=dict(embed_dims=dims, depths=depths))
    with pytest.raises(ValueError, match=match):
        HierarchicalGFNet(embed_dims=dims, depths=depths)


def test_gfnet_h_four_stage_dict_builds():
    model = GFNetH(arch=dict(embed_dims=(8, 16, 24, 32), depths=(1, 1, 2, 1)))
    assert [len(stage) for stage in model.blocks] == [1, 1, 2, 1]


@pytest.mark.parametrize('widths', [(32, 48, 64, 104), (16, 32, 48, 64, 104, 144)])
def test_affnet_needs_five_widths(widths):
    match = r'AFFNet has 5 stages .*widths needs 5 entries'
    with pytest.raises(ValueError, match=match):
        AFFNet(arch=dict(widths=widths, expand_ratio=2))
    with pytest.raises(ValueError, match=match):
        AFFNetTrunk(widths=widths)
