"""The feed-forward engine on tiny onnxruntime stand-ins of the real networks."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from dreamrender.models import ModelStore, weights_path
from dreamrender.server.engine import RenderCancelled
from dreamrender.server.engine.events import Checkpoint, Frame, Progress, Result
from dreamrender.server.engine.feedforward import (FeedForwardNets, free_size_model, onnx_session, render_feed_forward,
                                                   stylize_arbitrary, stylize_presets)
from dreamrender.settings import PresetWeight, StyleImageSettings, StyleSettings

from .._tiny_ff import write_tiny_feed_forward


@pytest.fixture(scope="module")
def nets(tmp_path_factory) -> FeedForwardNets:
    root = tmp_path_factory.mktemp("ff")
    write_tiny_feed_forward(root)
    store = ModelStore(root)
    data = {n: weights_path(n, store).read_bytes() for n in ("arbitrary_predict", "arbitrary_transform", "multistyle26")}
    return FeedForwardNets(predict=onnx_session(data["arbitrary_predict"]),
                           transform=onnx_session(free_size_model(data["arbitrary_transform"])),
                           multistyle=onnx_session(data["multistyle26"]))


def _img(h: int, w: int, seed: int) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_free_size_transform_agrees_with_the_fixed_export(nets, tmp_path):
    write_tiny_feed_forward(tmp_path)
    fixed = onnx_session(weights_path("arbitrary_transform", ModelStore(tmp_path)).read_bytes())
    x = np.random.default_rng(0).random((1, 384, 384, 3), dtype=np.float32)
    vec = np.random.default_rng(1).random((1, 1, 1, 100), dtype=np.float32)
    names = [i.name for i in fixed.get_inputs()]
    a = fixed.run(None, {names[0]: x, names[1]: vec})[0]
    b = nets.transform.run(None, {names[0]: x, names[1]: vec})[0]
    np.testing.assert_allclose(a, b, atol=1e-6)
    with pytest.raises(Exception):  # the fixed export refuses another size: the free one is what makes any size work
        fixed.run(None, {names[0]: x[:, :200], names[1]: vec})


@pytest.mark.parametrize("hw", [(37, 50), (64, 64), (130, 97)])
def test_any_size_comes_back_at_that_size(nets, hw):
    content = _img(*hw, 0)
    out = stylize_arbitrary(nets, content, [_img(80, 80, 1)], [1.0], 1.0)
    assert out.shape == content.shape and 0 <= float(out.min()) and float(out.max()) <= 1
    assert stylize_presets(nets, content, [(3, 1.0)], 1.0).shape == content.shape


def test_style_blends_and_strength(nets):
    content, a, b = _img(48, 64, 0), _img(64, 64, 1) * 0.1, _img(64, 64, 2) * 0.5 + 0.5
    only_a = stylize_arbitrary(nets, content, [a, b], [1.0, 0.0], 1.0)
    torch.testing.assert_close(only_a, stylize_arbitrary(nets, content, [a], [1.0], 1.0))
    mixed = stylize_arbitrary(nets, content, [a, b], [1.0, 1.0], 1.0)
    assert float((mixed - only_a).abs().mean()) > 1e-3
    # strength 0 is the content's own style vector: not the style's
    own = stylize_arbitrary(nets, content, [a], [1.0], 0.0)
    assert float((own - only_a).abs().mean()) > 1e-3


def test_presets_blend_and_strength(nets):
    content = _img(40, 56, 3)
    p3, p9 = (stylize_presets(nets, content, [(i, 1.0)], 1.0) for i in (3, 9))
    half = stylize_presets(nets, content, [(3, 0.5), (9, 0.5)], 1.0)
    assert float((half - p3).abs().mean()) > 1e-3 and float((half - p9).abs().mean()) > 1e-3
    torch.testing.assert_close(stylize_presets(nets, content, [(3, 2.0)], 1.0), p3)  # weights are normalised
    torch.testing.assert_close(stylize_presets(nets, content, [(3, 1.0)], 0.0), content)


def test_render_emits_frame_checkpoint_and_result(nets):
    events = []
    s = StyleSettings(method="feed_forward", size=72, styles=(StyleImageSettings(),))
    out = render_feed_forward(nets, _img(60, 90, 0), [_img(50, 50, 1)], settings=s, on_event=events.append)
    kinds = [type(e) for e in events]
    assert kinds == [Progress, Frame, Checkpoint, Result]
    assert max(out.shape[-2:]) == 72 and events[-1].image.shape == (48, 72, 3)
    presets = StyleSettings(method="feed_forward", size=40, presets=(PresetWeight(5),), preserve_colors=True)
    assert max(render_feed_forward(nets, _img(60, 90, 0), [], settings=presets).shape[-2:]) == 40


def test_cancel_before_the_pass(nets):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(RenderCancelled):
        render_feed_forward(nets, _img(30, 30, 0), [_img(30, 30, 1)], settings=StyleSettings(size=32), cancel=cancel)


class _Recording:
    """A session that records the RunOptions each run was given."""

    def __init__(self, session) -> None:
        self.session, self.options = session, []

    def __getattr__(self, name):
        return getattr(self.session, name)

    def run(self, names, feeds, run_options=None):
        self.options.append(run_options)
        return self.session.run(names, feeds, run_options)


def test_large_paintings_hand_back_onnxruntimes_arena(nets):
    """#28 D25: the CPU arena kept what a session's largest run needed (three 2048 px presets left a
    server at 5.2 GB). Runs over ARENA_KEEP_PIXELS shrink it when they end; small ones keep it."""
    from dreamrender.server.engine.feedforward import ARENA_KEEP_PIXELS

    multistyle, transform = _Recording(nets.multistyle), _Recording(nets.transform)
    rec = FeedForwardNets(predict=nets.predict, transform=transform, multistyle=multistyle)
    side = int(ARENA_KEEP_PIXELS ** 0.5) + 8
    for h, w in ((64, 96), (side, side)):
        stylize_presets(rec, _img(h, w, 0), [(3, 1.0)], 1.0)
        stylize_arbitrary(rec, _img(h, w, 1), [_img(64, 64, 2)], [1.0], 1.0)
    for runs in (multistyle.options, transform.options):
        small, large = runs
        assert small is None
        assert large.get_run_config_entry("memory.enable_memory_arena_shrinkage") == "cpu:0"
