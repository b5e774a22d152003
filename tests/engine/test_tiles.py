"""Exact tiled style loss (#17): tiled and untiled loss and gradient agree on small images."""
from __future__ import annotations

import pytest
import torch

from dreamrender.errors import InvalidArgumentError
from dreamrender.models import get_model
from dreamrender.server.engine._tiles import TiledObjective, geometry, tile_spans, tiles
from dreamrender.server.engine.sizing import AUTO_TILE
from dreamrender.server.engine.style import _Objective, _targets, render_style, tiling
from dreamrender.settings import StyleImageSettings, StyleSettings

from .test_style import load

LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]


def _loss_and_grad(objective, x: torch.Tensor) -> tuple[float, dict, torch.Tensor]:
    leaf = x.clone().requires_grad_(True)
    total, terms = objective.loss_and_grad(leaf * 1.0)  # through a non-leaf, as L-BFGS's closure does
    return float(total.detach()), {k: float(v.detach()) for k, v in terms.items()}, leaf.grad


@pytest.mark.parametrize("pooling", ["max", "average"])
@pytest.mark.parametrize("hw, tile", [((136, 200), 64), ((97, 131), 48), ((64, 64), 32)])
def test_tiled_loss_and_gradient_equal_the_untiled(hw, tile, pooling):
    net = get_model("tiny").with_pooling(pooling)
    torch.manual_seed(0)
    content, style = torch.rand(1, 3, *hw), torch.rand(1, 3, 80, 90)
    s = StyleSettings(model="tiny", size=max(hw), tv_weight=1e-3, styles=(StyleImageSettings(),))
    cpu = torch.device("cpu")
    targets = _targets(net, s, content, [style], max(hw), cpu)
    geo = geometry(net, LAYERS)
    assert geo is not None and len(tiles(hw, tile, geo)) > 1
    x = (content + 0.3 * torch.randn_like(content)).clamp(0, 1)
    ref_total, ref_terms, ref_grad = _loss_and_grad(_Objective(net, s, targets, cpu, "fp32"), x)
    tiled = TiledObjective(net, s, targets.content, targets.grams, cpu, "fp32", geo=geo, tile=tile)
    total, terms, grad = _loss_and_grad(tiled, x)
    assert total == pytest.approx(ref_total, rel=1e-4)
    for key, value in ref_terms.items():
        assert terms[key] == pytest.approx(value, rel=1e-4), key
    assert (grad - ref_grad).abs().max() <= 1e-4 * ref_grad.abs().max()


def test_tiled_targets_equal_the_untiled():
    net, cpu = get_model("tiny"), torch.device("cpu")
    torch.manual_seed(1)
    content, style = torch.rand(1, 3, 120, 180), torch.rand(1, 3, 150, 100)
    s = StyleSettings(model="tiny", size=180, styles=(StyleImageSettings(scale=1.2),))
    ref = _targets(net, s, content, [style], 180, cpu)
    tiled_s = StyleSettings(model="tiny", size=180, tile_size=48, styles=(StyleImageSettings(scale=1.2),))
    got = _targets(net, tiled_s, content, [style], 180, cpu)
    for layer, g in ref.grams.items():
        assert torch.allclose(got.grams[layer], g, rtol=1e-4, atol=1e-7 * g.abs().max()), layer
    for layer, f in ref.content.items():
        assert torch.allclose(got.content[layer], f, rtol=1e-4, atol=1e-5), layer


def test_geometry_and_spans():
    geo = geometry(get_model("tiny"), LAYERS)  # the tiny net has VGG's five blocks
    assert geo.strides == {"relu1_1": 1, "relu2_1": 2, "relu3_1": 4, "relu4_1": 8, "relu4_2": 8, "relu5_1": 16}
    assert geo.align == 16 and geo.halo == 48  # relu5_1 reaches 39 px either way
    spans = tile_spans(1365, 512, 16)
    assert spans[0][0] == 0 and spans[-1][1] == 1365 and all(a % 16 == 0 for a, _ in spans)
    assert max(b - a for a, b in spans) - min(b - a for a, b in spans) <= 32  # no sliver tile


def test_auto_tiling_switches_on_above_a_size_and_tile_size_forces_it():
    net = get_model("tiny")
    assert tiling(net, StyleSettings(model="tiny", size=1024), (683, 1024)) is None  # a 1024 px render: untiled
    assert tiling(net, StyleSettings(model="tiny", size=2048), (1365, 2048))[1] == AUTO_TILE == 384  # over 1 Mpx
    # the 1024 px middle scale of a 2048 px render is tiled too (the render's tiles set its memory)
    assert tiling(net, StyleSettings(model="tiny", size=2048), (683, 1024))[1] == 384
    assert tiling(net, StyleSettings(model="tiny", size=2048), (341, 512)) is None
    assert tiling(net, StyleSettings(model="tiny", tile_size=64), (100, 150))[1] == 64
    assert tiling(net, StyleSettings(model="tiny", tile_size=256), (100, 150)) is None  # fits one tile


def test_a_tiled_render_matches_the_untiled_render():
    net = get_model("tiny")
    content, starry = load("chelsea_small.png"), load("starry_small.png")
    out = {}
    for tile in (0, 32):
        s = StyleSettings(model="tiny", size=96, scales=1, iterations=8, tile_size=tile, precision="fp32",
                          styles=(StyleImageSettings(),))
        out[tile] = render_style(net, content, [starry], settings=s)
    # Eight L-BFGS steps amplify rounding (more since the first step is a real one, see
    # engine/_lbfgs.py), and by the kernels' ISA: the largest difference was 0.7 grey levels with
    # AVX-512, 1.4 with the kernels held at AVX2; on average 0.02-0.025 levels. The same picture.
    diff = (out[0] - out[32]).abs() * 255
    assert diff.max() < 3 and diff.mean() < 0.1


def test_tile_size_on_a_network_that_cannot_be_tiled_is_refused():
    s = StyleSettings(model="tiny", size=64, tile_size=32, styles=(StyleImageSettings(),))
    with pytest.raises(InvalidArgumentError) as err:
        render_style(_untileable(), load("chelsea_small.png"), [load("starry_small.png")], settings=s)
    assert err.value.field == "tile_size"


def _untileable():
    """The tiny net with a strided first convolution: tiles could not be exact."""
    import copy

    net = copy.deepcopy(get_model("tiny"))
    net.net.features[0].stride = (2, 2)
    return net


def test_a_large_final_scale_refines_in_fewer_iterations():
    s = StyleSettings(iterations=100)
    assert s.iterations_at(2, 3, 1365 * 2048) == 30  # large_iterations
    assert s.iterations_at(1, 3, 683 * 1024) == 100  # coarse scales as asked
    assert s.iterations_at(0, 1, 1365 * 2048) == 100  # a single scale has nothing to refine
    assert StyleSettings(iterations=100, large_iterations=0).iterations_at(2, 3, 1365 * 2048) == 100
