"""Dreams, round two, on the tiny net: Laplacian-normalised gradients, guided dreams, the
strongest channels of a layer, and zoom animations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dreamrender.errors import InvalidArgumentError
from dreamrender.models import get_model
from dreamrender.server.engine import AnimationFrame, Frame, Progress, Result, render_dream
from dreamrender.server.engine._dream_objective import lap_normalize, strongest_channels, zoom_warp
from dreamrender.server.engine.imaging import to_tensor
from dreamrender.settings import DreamSettings, DreamTerm

from ..conftest import DATA


@pytest.fixture(scope="module")
def net():
    return get_model("tiny")


def _load(name: str) -> torch.Tensor:
    return to_tensor(Image.open(DATA / name).convert("RGB"))


def settings(**kw) -> DreamSettings:
    base = dict(model="tiny", terms=(DreamTerm("relu3_1"),), octaves=2, steps=3, jitter=4, seed=3)
    base.update(kw)
    return DreamSettings(**base)


def _run(net, start, **kw) -> tuple[list, torch.Tensor]:
    events: list = []
    guide = kw.pop("guide", None)
    out = render_dream(net, start, settings=settings(**kw), on_event=events.append, guide=guide)
    return events, out


def test_laplacian_normalisation_balances_the_bands():
    torch.manual_seed(0)
    # A gradient whose low frequencies dwarf its high ones: std normalisation keeps that balance,
    # the Laplacian one lifts the fine band to the coarse band's strength.
    coarse = torch.nn.functional.interpolate(torch.randn(1, 3, 4, 6), size=(64, 96), mode="bilinear") * 10
    fine = 0.01 * torch.randn(1, 3, 64, 96)
    out = lap_normalize(coarse + fine, 3)
    assert out.shape == (1, 3, 64, 96) and abs(float(out.std()) - 1) < 1e-4
    def fine_share(g: torch.Tensor) -> float:  # high-pass std over std, away from the borders
        hi = g - torch.nn.functional.avg_pool2d(g, 3, 1, 1)
        return float(hi[..., 4:-4, 4:-4].std()) / float(g[..., 4:-4, 4:-4].std())

    # std normalisation keeps the share exactly; measured 0.013 -> 0.051 here
    assert fine_share(out) > 3 * fine_share(coarse + fine)
    with pytest.raises(InvalidArgumentError) as err:
        lap_normalize(coarse, 6)  # a 64 px side splits at most 5 times
    assert err.value.field == "lap_levels"


def test_laplacian_dream_is_smoother_than_std(net):
    photo = _load("chelsea_small.png")
    _, std = _run(net, photo, gradient_norm="std", octaves=1, steps=6)
    _, lap = _run(net, photo, gradient_norm="laplacian", lap_levels=3, octaves=1, steps=6)

    def roughness(img: torch.Tensor) -> float:  # mean squared neighbour difference of what the dream added
        d = img - photo
        return float((d[..., 1:, :] - d[..., :-1, :]).pow(2).mean() + (d[..., 1:] - d[..., :-1]).pow(2).mean())

    assert roughness(lap) < 0.8 * roughness(std)


def test_guided_dream_differs_from_the_unguided_one(net):
    photo, guide = _load("chelsea_small.png"), _load("starry_small.png")
    _, plain = _run(net, photo)
    _, guided = _run(net, photo, guide=guide)
    _, again = _run(net, photo, guide=guide)
    assert torch.equal(guided, again)  # seeded: the same guided dream twice
    assert float((guided - plain).abs().mean()) > 0.005


def test_strongest_channels_are_the_most_active_and_reported(net):
    photo = _load("chelsea_small.png")
    (term,) = strongest_channels(net, photo, (DreamTerm("relu2_1", strongest=3),), objective="mean_squared",
                                 device=torch.device("cpu"), precision="fp32")
    acts = net(photo, ["relu2_1"])["relu2_1"][0].pow(2).mean(dim=(1, 2))
    assert term.channels == tuple(sorted(torch.topk(acts, 3).indices.tolist())) and term.strongest == 3
    events, _ = _run(net, photo, terms=(DreamTerm("relu2_1", strongest=3), DreamTerm("relu3_1", weight=0.5)))
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[0].terms[0].channels == term.channels and progress[0].terms[1].layer == "relu3_1"
    assert all(not p.terms for p in progress[1:])


def test_zoom_animation_streams_each_frame(net):
    photo = _load("chelsea_small.png")
    events, out = _run(net, photo, zoom_frames=4, zoom=1.1, rotate=2.0, steps=2)
    frames = [e for e in events if isinstance(e, AnimationFrame)]
    assert [f.index for f in frames] == [0, 1, 2, 3] and all(f.count == 4 for f in frames)
    assert all(f.image.shape == (64, 96, 3) for f in frames)
    assert [e.stage_index for e in events if isinstance(e, Frame) and e.stage == "frame"] == [0, 1, 2, 3]
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[-1].step == progress[-1].total_steps == 2 * 2 + 3 * 2  # ETA covers the whole animation
    result = next(e for e in events if isinstance(e, Result))
    assert np.array_equal(result.image, frames[-1].image)
    # Steady: each frame is the last one zoomed in and dreamed a little, so neighbours stay close.
    diffs = [np.abs(a.image.astype(float) - b.image.astype(float)).mean() for a, b in zip(frames, frames[1:])]
    assert max(diffs) < 40


def test_zoom_warp_zooms_about_the_centre():
    img = torch.zeros(1, 3, 40, 60)
    img[..., 18:22, 28:32] = 1.0  # a bright square at the centre
    out = zoom_warp(img, zoom=2.0, rotate=0.0, shift_x=0, shift_y=0)
    ys, xs = torch.nonzero(out[0, 0] > 0.5, as_tuple=True)
    assert 7 <= len(set(ys.tolist())) <= 9 and 7 <= len(set(xs.tolist())) <= 9  # twice the size, same centre
    assert abs(float(ys.float().mean()) - 19.5) < 1 and abs(float(xs.float().mean()) - 29.5) < 1
    moved = zoom_warp(img, zoom=1.0, rotate=0.0, shift_x=5, shift_y=0)
    assert torch.allclose(moved[..., 18:22, 33:37], img[..., 18:22, 28:32], atol=1e-5)
