"""Spatial control (#27): guided Grams, regions in the untiled and tiled losses, feed-forward blending."""
from __future__ import annotations

import pytest
import torch

from dreamrender.models import get_model
from dreamrender.server.engine import Result
from dreamrender.server.engine._regions import blend_regions, guided_gram, layer_mask
from dreamrender.server.engine._tiles import TiledObjective, geometry, tiles
from dreamrender.server.engine.style import _Objective, _targets, gram, gram_loss, render_style
from dreamrender.settings import StyleImageSettings, StyleSettings

from .test_style import content, load, net, settings, starry  # noqa: F401 (fixtures)
from .test_tiles import LAYERS, _loss_and_grad

CPU = torch.device("cpu")


def _soft_halves(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A left and a right mask with a soft 10% ramp between them."""
    ramp = ((torch.arange(w, dtype=torch.float32) / (w - 1) - 0.45) / 0.1).clamp(0, 1)
    right = ramp.view(1, 1, 1, w).expand(1, 1, h, w).contiguous()
    return 1 - right, right


def test_guided_gram_of_a_full_mask_is_the_gram_and_ignores_what_is_outside():
    torch.manual_seed(0)
    f = torch.rand(1, 5, 6, 8)
    assert torch.allclose(guided_gram(f, torch.ones(1, 1, 6, 8)), gram(f), atol=1e-6)
    left = torch.zeros(1, 1, 6, 8)
    left[..., :4] = 1
    changed = f.clone()
    changed[..., 4:] = torch.rand(1, 5, 6, 4) * 9  # outside the mask
    assert torch.allclose(guided_gram(changed, left), guided_gram(f, left))
    assert torch.allclose(guided_gram(f, left), gram(f[..., :4]), atol=1e-6)  # normalised by the mask's mass


def test_layer_mask_averages_areas():
    m = torch.zeros(1, 1, 8, 8)
    m[..., :3] = 1
    down = layer_mask(m, (4, 4))
    assert torch.allclose(down[0, 0, 0], torch.tensor([1.0, 0.5, 0.0, 0.0]))
    assert float(down.sum()) * 4 == float(m.sum())  # mass follows the area


def test_gram_loss_with_a_normaliser_has_the_right_gradient():
    torch.manual_seed(0)
    f = torch.rand(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    target = torch.rand(3, 3, dtype=torch.float64)
    target = target + target.t()  # a Gram target is symmetric (the backward's closed form assumes it)
    assert torch.autograd.gradcheck(lambda x: gram_loss(x, target, 7.5), (f,))
    ref = ((f.flatten(2)[0] @ f.flatten(2)[0].t()) / 7.5 - target).pow(2).sum()
    assert torch.allclose(gram_loss(f, target, 7.5), ref)


@pytest.mark.parametrize("hw, tile", [((96, 136), 48), ((97, 131), 40)])
def test_tiled_regions_equal_the_untiled(hw, tile):
    """Two soft regions with their own styles (one guided by a source mask): the tiled loss and
    gradient are the untiled ones, so region borders across tile borders leave no seam."""
    net = get_model("tiny")
    torch.manual_seed(0)
    content, s1, s2 = torch.rand(1, 3, *hw), torch.rand(1, 3, 80, 90), torch.rand(1, 3, 70, 60)
    s = StyleSettings(model="tiny", size=max(hw), tv_weight=1e-3,
                      styles=(StyleImageSettings(weight=1.0), StyleImageSettings(weight=0.5)))
    masks = _soft_halves(*hw)
    source = torch.zeros(1, 1, 70, 60)
    source[..., 10:50, 5:40] = 1
    targets = _targets(net, s, content, [s1, s2], max(hw), CPU, masks, [None, source])
    assert len(targets.regions) == 2 and not targets.grams
    geo = geometry(net, LAYERS)
    assert len(tiles(hw, tile, geo)) > 2
    x = (content + 0.3 * torch.randn_like(content)).clamp(0, 1)
    ref_total, ref_terms, ref_grad = _loss_and_grad(_Objective(net, s, targets, CPU, "fp32"), x)
    tiled = TiledObjective(net, s, targets.content, targets.grams, CPU, "fp32", geo=geo, tile=tile,
                           regions=targets.regions)
    total, terms, grad = _loss_and_grad(tiled, x)
    assert total == pytest.approx(ref_total, rel=1e-4)
    for key, value in ref_terms.items():
        assert terms[key] == pytest.approx(value, rel=1e-4), key
    assert (grad - ref_grad).abs().max() <= 1e-4 * ref_grad.abs().max()
    # The tiled targets (a source mask too) are the untiled ones.
    tiled_s = StyleSettings(model="tiny", size=max(hw), tile_size=tile, styles=s.styles)
    got = _targets(net, tiled_s, content, [s1, s2], max(hw), CPU, masks, [None, source])
    for ref_r, got_r in zip(targets.regions, got.regions):
        for layer, g in ref_r.grams.items():
            assert torch.allclose(got_r.grams[layer], g, rtol=1e-4, atol=1e-6 * g.abs().max()), layer


def test_a_full_mask_is_the_unmasked_render(net, content, starry):
    """One style with an all-white mask: the same loss as no mask (the guided Gram of ones is the Gram)."""
    s = settings(styles=(StyleImageSettings(),))
    plain = _targets(net, s, content, [starry], 64, CPU)
    full = _targets(net, s, content, [starry], 64, CPU, [torch.ones(1, 1, *content.shape[-2:])])
    x = (torch.nn.functional.interpolate(content, size=(43, 64)) + 0.1).clamp(0, 1)
    a, _, ga = _loss_and_grad(_Objective(net, s, plain, CPU, "fp32"), x)
    b, _, gb = _loss_and_grad(_Objective(net, s, full, CPU, "fp32"), x)
    assert b == pytest.approx(a, rel=1e-4)
    assert torch.allclose(ga, gb, rtol=1e-3, atol=1e-4 * ga.abs().max())


def _region_loss(net, s, image, style, mask) -> float:
    """The style loss of `image` inside `mask` against `style`'s whole-image Grams (per-region evidence)."""
    layers = [x.layer for x in s.style_layers]
    fi, fs = net(image, layers), net(style, layers)
    return sum(float((guided_gram(fi[k], layer_mask(mask, fi[k].shape[-2:])) - gram(fs[k])).pow(2).sum())
               for k in layers)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_each_half_takes_its_own_style(net, content, optimizer):
    """Left half in one style, right half in another: each half ends nearer its own style's Grams."""
    stripes = torch.zeros(1, 3, 64, 64)
    stripes[:, 0, :, ::4] = 1  # red vertical stripes
    blobs = load("scream_small.png")
    left, right = _soft_halves(*content.shape[-2:])
    s = settings(size=content.shape[-1], iterations=30, optimizer=optimizer, style_weight=1.0,
                 styles=(StyleImageSettings(), StyleImageSettings()))
    events = []
    render_style(net, content, [stripes, blobs], settings=s, masks=[left, right], on_event=events.append)
    out = next(e for e in events if isinstance(e, Result)).image
    img = torch.from_numpy(out).permute(2, 0, 1)[None].float() / 255
    l, r = (layer_mask(m, img.shape[-2:]) for m in (left, right))
    own = _region_loss(net, s, img, stripes, l) + _region_loss(net, s, img, blobs, r)
    swapped = _region_loss(net, s, img, blobs, l) + _region_loss(net, s, img, stripes, r)
    assert own * 1.5 < swapped


def test_blend_regions():
    photo = torch.full((1, 3, 4, 6), 0.5)
    a, b = torch.zeros(1, 3, 4, 6), torch.ones(1, 3, 4, 6)
    left = torch.zeros(1, 1, 4, 6)
    left[..., :2] = 1
    left[..., 2] = 0.5  # a soft edge
    out = blend_regions(photo, [a], [left], [1.0])
    assert torch.equal(out[..., :2], a[..., :2]) and torch.equal(out[..., 3:], photo[..., 3:])
    assert torch.allclose(out[..., 2], torch.full((1, 3, 4), 0.25))  # halfway from photo to painting
    both = blend_regions(photo, [a, b], [torch.ones(1, 1, 4, 6), None], [1.0, 3.0])
    assert torch.allclose(both, torch.full_like(photo, 0.75))  # overlaps mix by weight
    zero = blend_regions(photo, [a, b], [left, left], [0.0, 0.0])
    assert torch.allclose(zero[..., :2], torch.full((1, 3, 4, 2), 0.5))  # zero weights mix by mask, not to black


def test_masks_through_scales_bf16_and_colour_preservation(net, content, starry):
    """Masks follow every scale (resized to each), bf16 autocast and colour preservation: the
    unmasked right side stays near the photo while the masked left is painted."""
    left, _ = _soft_halves(*content.shape[-2:])
    s = settings(size=content.shape[-1], scales=2, iterations=10, precision="bf16", preserve_colors=True,
                 style_weight=1.0, styles=(StyleImageSettings(),))
    events = []
    render_style(net, content, [starry], settings=s, masks=[left], on_event=events.append)
    out = next(e for e in events if isinstance(e, Result))
    assert out.stats.precision == "bf16"
    img = torch.from_numpy(out.image).permute(2, 0, 1)[None].float() / 255
    photo = torch.nn.functional.interpolate(content, size=img.shape[-2:], mode="bilinear", antialias=True)
    diff = (img - photo).abs().mean(1)[0]
    w = diff.shape[-1]
    assert diff[:, : w // 4].mean() > 2 * diff[:, -(w // 4):].mean()


@pytest.mark.parametrize("channels_last", [False, True])
def test_guided_loss_matches_autograd_of_the_definition(channels_last):
    """The fused loss over gathered rows: value and gradient equal autograd through (F m)(F m)^T."""
    from dreamrender.server.engine._gram import guided_loss, guided_part

    torch.manual_seed(0)
    feat = torch.randn(1, 6, 9, 7, dtype=torch.float64)
    if channels_last:
        feat = feat.contiguous(memory_format=torch.channels_last)
    soft = torch.rand(1, 1, 9, 7, dtype=torch.float64) * (torch.rand(1, 1, 9, 7) > 0.4)
    targets = [gram(torch.randn(1, 6, 5, 5, dtype=torch.float64)) for _ in range(3)]
    parts = [guided_part(1.0, soft, 6 * soft.pow(2).sum(), targets[0]),
             guided_part(0.5, 1 - soft, 6 * (1 - soft).pow(2).sum(), targets[1]),
             guided_part(2.0, None, 6 * 9 * 7, targets[2])]
    a = feat.clone().requires_grad_(True)
    got = guided_loss(a, parts)
    got.backward()
    b = feat.clone().requires_grad_(True)
    ref = sum(w * (guided_gram(b, m) - t).pow(2).sum()
              for w, m, t in ((1.0, soft, targets[0]), (0.5, 1 - soft, targets[1]), (2.0, torch.ones_like(soft),
                                                                                      targets[2])))
    ref.backward()
    assert torch.allclose(got, ref) and torch.allclose(a.grad, b.grad)
