"""DeepDream engine on the tiny net and small CPU tensors."""
from __future__ import annotations

import threading

import pytest
import torch
from PIL import Image

from dreamrender.errors import InvalidArgumentError
from dreamrender.models import get_model
from dreamrender.server.engine import Frame, Progress, RenderCancelled, Result, render_dream
from dreamrender.server.engine.imaging import to_tensor
from dreamrender.server.engine.dream import dream_noise, octave_sizes, tile_spans
from dreamrender.settings import DreamSettings, DreamTerm, PreviewSettings

from ..conftest import DATA


@pytest.fixture(scope="module")
def net():
    return get_model("tiny")


@pytest.fixture(scope="module")
def photo():
    return to_tensor(Image.open(DATA / "chelsea_small.png").convert("RGB"))


def settings(**kw) -> DreamSettings:
    base = dict(model="tiny", terms=(DreamTerm("relu3_1"),), octaves=2, steps=3, jitter=4)
    base.update(kw)
    return DreamSettings(**base)


def test_tile_spans_cover_without_slivers():
    assert tile_spans(100, 512) == [(0, 100)]
    spans = tile_spans(1100, 512)
    assert spans[0][0] == 0 and spans[-1][1] == 1100
    assert all(b - a <= 512 for a, b in spans) and min(b - a for a, b in spans) > 300
    assert all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))


def test_octave_sizes_small_first_and_bounded():
    sizes = octave_sizes(300, 451, 4, 1.4, 32)
    assert sizes[-1] == (300, 451) and len(sizes) == 4
    assert sizes[0] == (round(300 / 1.4**3), round(451 / 1.4**3))
    assert octave_sizes(40, 40, 5, 2.0, 32) == [(40, 40)]  # smaller octaves dropped


def test_dream_changes_image_and_raises_score(net, photo):
    events = []
    out = render_dream(net, photo, settings=settings(steps=6, octaves=1), on_event=events.append)
    assert out.shape == photo.shape
    assert (out - photo).abs().mean() > 0.005
    scores = [e.values["score"] for e in events if isinstance(e, Progress)]
    assert scores[-1] > scores[0] * 1.2  # gradient ascent amplifies the layer
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


def test_same_seed_same_picture_other_seed_differs(net, photo):
    a = render_dream(net, photo, settings=settings(seed=7))
    b = render_dream(net, photo, settings=settings(seed=7))
    c = render_dream(net, photo, settings=settings(seed=8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_events_progress_every_step_frames_and_result(net, photo):
    events = []
    render_dream(net, photo, settings=settings(steps=4, preview=PreviewSettings(every=2, max_side=40)),
                 on_event=events.append)
    progress = [e for e in events if isinstance(e, Progress)]
    frames = [e for e in events if isinstance(e, Frame)]
    assert [p.step for p in progress] == list(range(1, 9)) and progress[-1].total_steps == 8
    assert {p.stage_index for p in progress} == {0, 1} and progress[0].stage_count == 2
    assert [f.step for f in frames] == [2, 4, 6, 8]  # every 2 steps; octave ends fall on them
    assert all(max(f.image.shape[:2]) <= 40 for f in frames)
    assert isinstance(events[-1], Result) and events[-1].image.shape == (64, 96, 3)
    assert progress[-1].eta_seconds == 0.0 and progress[-1].elapsed_seconds > 0


def test_tiles_bound_what_the_network_sees(net, photo):
    seen = []
    orig = net.forward

    def spy(x, layers):
        seen.append(tuple(x.shape[-2:]))
        return orig(x, layers)

    net.forward = spy
    try:
        big = torch.nn.functional.interpolate(photo, size=(150, 230), mode="bilinear")
        render_dream(net, big, settings=settings(octaves=1, steps=2, tile_size=64))
    finally:
        del net.forward
    assert seen and max(max(s) for s in seen) <= 64
    assert len(seen) == 2 * len(tile_spans(150, 64)) * len(tile_spans(230, 64))


def test_detail_carried_up_not_resampled(net, photo):
    """With 0 steps' worth of change at the last octave the result is base + upsampled detail:
    the input's own sharpness survives (a whole-image resample would blur it)."""
    out = render_dream(net, photo, settings=settings(octaves=3, octave_scale=2.0, steps=1, step_size=0.01))
    assert (out - photo).abs().max() < 0.05


def test_channels_and_mean_objective(net, photo):
    s = settings(terms=(DreamTerm("relu3_1", (0, 3), 2.0),), objective="mean", gradient_norm="mean_abs")
    out = render_dream(net, photo, settings=s)
    assert not torch.equal(out, photo)


def test_noise_start_is_seeded():
    assert torch.equal(dream_noise(40, 30, 1), dream_noise(40, 30, 1))
    assert dream_noise(40, 30, 1).shape == (1, 3, 30, 40)


def test_cancel_stops_within_one_step(net, photo):
    cancel = threading.Event()
    steps = []

    def on_event(e):
        if isinstance(e, Progress):
            steps.append(e.step)
            if e.step == 2:
                cancel.set()

    with pytest.raises(RenderCancelled):
        render_dream(net, photo, settings=settings(steps=50), on_event=on_event, cancel=cancel)
    assert steps == [1, 2]


@pytest.mark.parametrize("term,field", [(DreamTerm("nope"), "terms[0].layer"),
                                        (DreamTerm("relu3_1", (16,)), "terms[0].channels")])
def test_bad_terms_name_the_field(net, photo, term, field):
    with pytest.raises(InvalidArgumentError) as err:
        render_dream(net, photo, settings=settings(terms=(term,)))
    assert err.value.field == field and err.value.allowed


def _half_mask(photo: torch.Tensor) -> torch.Tensor:
    """1 on the left half of the picture, 0 on the right."""
    mask = torch.zeros(1, 1, *photo.shape[-2:])
    mask[..., : photo.shape[-1] // 2] = 1.0
    return mask


@pytest.mark.parametrize("invert", [False, True])
def test_a_mask_confines_the_dream_at_every_octave(net, photo, invert):
    out = render_dream(net, photo, settings=settings(octaves=3, mask_invert=invert), mask=_half_mask(photo))
    w = photo.shape[-1]
    left, right = (out - photo)[..., : w // 4].abs(), (out - photo)[..., -w // 4:].abs()
    dreamt, kept = (right, left) if invert else (left, right)
    # Far from the mask's edge the kept side is the photo to float rounding; the other side dreamt.
    assert float(kept.max()) < 1e-5 and float(dreamt.mean()) > 0.01


def test_a_soft_mask_fades_the_dream_and_follows_a_zoom(net, photo):
    ramp = torch.linspace(0, 1, photo.shape[-1]).view(1, 1, 1, -1).expand(1, 1, *photo.shape[-2:]).contiguous()
    out = render_dream(net, photo, settings=settings(octaves=1, steps=6), mask=ramp)
    change = (out - photo).abs().mean(dim=(0, 1, 2))
    thirds = [float(c.mean()) for c in change.chunk(3)]
    assert thirds[0] < thirds[1] < thirds[2]  # stronger where the mask is lighter
    frames = []
    render_dream(net, photo, settings=settings(octaves=1, steps=2, zoom_frames=3, zoom=1.2, mask_invert=True),
                 mask=_half_mask(photo), on_event=lambda e: frames.append(e))
    assert sum(type(e).__name__ == "AnimationFrame" for e in frames) == 3
    with pytest.raises(InvalidArgumentError) as err:
        render_dream(net, photo, settings=settings(), mask=torch.ones(1, 1, 10, 10))
    assert err.value.field == "mask"
