"""Style-transfer engine on the tiny net and small CPU tensors."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image

from dreamrender.errors import InvalidArgumentError
from dreamrender.models import get_model
from dreamrender.server.engine import Frame, Progress, RenderCancelled, Result
from dreamrender.server.engine.imaging import to_tensor
from dreamrender.server.engine.style import gram, preserve_colors, render_style, scale_sides
from dreamrender.settings import PreviewSettings, StyleImageSettings, StyleLayer, StyleSettings

from ..conftest import DATA


def load(name: str) -> torch.Tensor:
    return to_tensor(Image.open(DATA / name).convert("RGB"))


@pytest.fixture(scope="module")
def net():
    return get_model("tiny")


@pytest.fixture(scope="module")
def content():
    return load("chelsea_small.png")


@pytest.fixture(scope="module")
def starry():
    return load("starry_small.png")


def settings(**kw) -> StyleSettings:
    base = dict(model="tiny", size=64, scales=1, iterations=12, style_weight=1e-2,
                preview=PreviewSettings(every=4, max_side=512))
    base.update(kw)
    return StyleSettings(**base)


def test_gram_normalised_by_chw():
    f = torch.ones(1, 2, 3, 4)
    assert torch.allclose(gram(f), torch.full((2, 2), 12 / 24))


def test_scale_sides_halve_up_to_size():
    assert scale_sides(512, 3) == [128, 256, 512]
    assert scale_sides(100, 4) == [100]  # 50 is below the minimum side: dropped
    assert scale_sides(512, 1) == [512]


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_loss_falls_and_result_is_best_checkpoint(net, content, starry, optimizer):
    events = []
    out = render_style(net, content, [starry], settings=settings(optimizer=optimizer, init="noise", iterations=16),
                       on_event=events.append)
    progress = [e for e in events if isinstance(e, Progress)]
    frames = [e for e in events if isinstance(e, Frame)]
    result = events[-1]
    assert isinstance(result, Result)
    totals = [p.values["total"] for p in progress]
    assert min(totals) < 0.5 * totals[0]
    assert set(progress[0].values) == {"content", "style", "total"}
    # Result = the best-loss image = the last checkpoint frame (png-free: compare the arrays).
    assert frames[-1].score == pytest.approx(min(totals))
    assert np.array_equal(frames[-1].image, result.image)
    assert out.shape[-1] == 64 and tuple(result.image.shape) == (43, 64, 3)


def test_lbfgs_history_reaches_the_optimiser(net, content, starry, monkeypatch):
    from dreamrender.server.engine import style as style_module

    seen = []
    real = style_module.minimize

    def spy(x, closure, **kw):
        seen.append((kw["history"], kw["storage"]))
        return real(x, closure, **kw)

    monkeypatch.setattr(style_module, "minimize", spy)
    short = render_style(net, content, [starry], settings=settings(init="noise", iterations=12, lbfgs_history=2))
    full = render_style(net, content, [starry], settings=settings(init="noise", iterations=12))
    assert seen == [(2, torch.float16), (100, torch.float16)]
    assert not torch.equal(short, full)  # after two pairs the kept curvature differs


def test_same_seed_same_picture(net, content, starry):
    s = settings(init="noise", seed=3)
    a = render_style(net, content, [starry], settings=s)
    b = render_style(net, content, [starry], settings=s)
    c = render_style(net, content, [starry], settings=settings(init="noise", seed=4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_multiscale_runs_each_scale(net, content, starry):
    events = []
    render_style(net, content, [starry], settings=settings(size=128, scales=2, iterations=5), on_event=events.append)
    stages = [(e.stage_index, e.stage_count) for e in events if isinstance(e, Progress)]
    assert stages[0] == (0, 2) and stages[-1] == (1, 2) and len(stages) == 10
    frames = [e for e in events if isinstance(e, Frame)]
    assert max(frames[0].image.shape[:2]) == 64 and max(frames[-1].image.shape[:2]) == 128


def test_blend_weights_move_the_style_targets(net, content, starry):
    scream = load("scream_small.png")
    a = render_style(net, content, [starry, scream], settings=settings(styles=(StyleImageSettings(1.0), StyleImageSettings(0.0))))
    b = render_style(net, content, [starry], settings=settings())
    c = render_style(net, content, [starry, scream], settings=settings(styles=(StyleImageSettings(0.7), StyleImageSettings(0.3))))
    assert torch.allclose(a, b, atol=1e-5)  # weight 0 contributes nothing
    assert (c - b).abs().mean() > 1e-3


def test_preserve_colors_keeps_content_chroma(content):
    styled = torch.rand_like(content)
    out = preserve_colors(styled, content)
    yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    chroma = lambda x: torch.einsum("ij,bjhw->bihw", yiq, x)[:, 1:]  # noqa: E731
    inside = (out > 0.01) & (out < 0.99)  # where no clamping happened
    mask = inside.all(1, keepdim=True).expand(-1, 2, -1, -1)
    assert torch.allclose(chroma(out)[mask], chroma(content)[mask], atol=1e-4)


def test_tv_and_average_pooling_and_init_image(net, content, starry):
    events = []
    init = torch.full_like(content, 0.5)
    render_style(net, content, [starry], settings=settings(tv_weight=1e-3, pooling="average", init="image"),
                 init_image=init, on_event=events.append)
    assert any("tv" in e.values for e in events if isinstance(e, Progress))


def test_cancel_between_lbfgs_closure_calls(net, content, starry):
    cancel = threading.Event()
    steps = []

    def on_event(e):
        if isinstance(e, Progress):
            steps.append(e.step)
            if e.step == 3:
                cancel.set()

    with pytest.raises(RenderCancelled):
        render_style(net, content, [starry], settings=settings(iterations=100), on_event=on_event, cancel=cancel)
    assert steps == [1, 2, 3]


def test_bad_layer_names_field(net, content, starry):
    with pytest.raises(InvalidArgumentError) as err:
        render_style(net, content, [starry], settings=settings(style_layers=(StyleLayer("relu9_9"),)))
    assert err.value.field == "style_layers[0].layer"
    with pytest.raises(InvalidArgumentError) as err:
        render_style(net, content, [], settings=settings())
    assert err.value.field == "styles"


def test_gram_loss_backward_matches_autograd():
    from dreamrender.server.engine.style import gram_loss

    f = torch.randn(1, 5, 4, 3, dtype=torch.float64, requires_grad=True)
    target = gram(torch.randn(1, 5, 4, 3, dtype=torch.float64)).double()
    assert torch.autograd.gradcheck(lambda x: gram_loss(x, target), (f,))
    ref = (gram(f).double() - target).pow(2).sum()
    assert torch.allclose(gram_loss(f, target), ref)


def test_gram_loss_channels_last_matches():
    from dreamrender.server.engine.style import gram_loss

    f = torch.randn(1, 6, 5, 4, dtype=torch.float64)
    target = gram(torch.randn(1, 6, 5, 4, dtype=torch.float64))
    a = f.clone().requires_grad_(True)
    b = f.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    gram_loss(a, target).backward()
    gram_loss(b, target).backward()
    assert torch.allclose(a.grad, b.grad) and torch.allclose(gram(a), gram(b))
    assert torch.autograd.gradcheck(lambda x: gram_loss(x, target), (b,))


def test_gram_loss_onednn_path_matches_matmul():
    """float32 channels_last features on the CPU take the 1x1-conv kernels: same values and gradient."""
    from dreamrender.server.engine._gram import _onednn, gram_loss

    f = torch.rand(1, 16, 9, 7)
    target = gram(torch.rand(1, 16, 9, 7))
    a = f.clone().requires_grad_(True)
    b = f.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    assert not _onednn(a) and _onednn(b)
    la, lb = gram_loss(a, target), gram_loss(b, target)
    la.backward()
    lb.backward()
    assert torch.allclose(la, lb, rtol=1e-5)
    assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-7)
    assert b.grad.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(gram(a), gram(b), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_inputs_are_left_untouched(net, content, starry, optimizer):
    c = content[..., :48, :64].clone()  # already at the render's size: resizing returns it as is
    before = c.clone()
    render_style(net, c, [starry], settings=settings(size=64, iterations=3, optimizer=optimizer, init="content"))
    assert torch.equal(c, before) and not c.requires_grad


def test_a_loss_that_stops_being_finite_fails_the_render(net, content, starry):
    """Weights past float32's range (the server's bounds refuse them; the engine guards anyway):
    the render fails naming the step, rather than returning a black picture."""
    from dreamrender.server.engine import NonFiniteError

    s = settings(style_weight=1e12, style_layers=(StyleLayer("relu1_1", 1e30),))
    with pytest.raises(NonFiniteError, match="became inf at step 1"):
        render_style(net, content, [starry], settings=s)
