"""The DCGAN engine and the sampler on tiny CPU tensors: events, resuming, cancelling, slerp, FID."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from dreamrender.models import DCGANDiscriminator, DCGANGenerator
from dreamrender.server.engine import RenderCancelled
from dreamrender.server.engine.events import Frame, Progress, Scores, TrainingCheckpoint
from dreamrender.server.engine.gan import sample_grid, train_gan
from dreamrender.server.engine.sampling import slerp, walk_latents
from dreamrender.server.gan_metrics import fid
from dreamrender.settings import GanSettings, PreviewSettings, SampleSettings


def _data(n: int = 24, size: int = 28, channels: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8), torch.arange(n) % 10


def _settings(**kw) -> GanSettings:
    base = dict(name="t", batch=8, steps=6, latent=8, width=32, progress_every=2, preview=PreviewSettings(every=3))
    return GanSettings(**(base | kw))


@pytest.mark.parametrize("size", [28, 32, 64])
def test_networks_make_and_judge_each_size(size):
    g = DCGANGenerator(latent=8, channels=3, size=size, classes=4)
    d = DCGANDiscriminator(channels=3, size=size, classes=4)
    y = torch.eye(4)[[0, 3]]
    x = g(torch.randn(2, 8), y)
    assert x.shape == (2, 3, size, size) and x.abs().max() <= 1
    assert d(x, y).shape == (2,)


def test_training_streams_progress_grids_scores_and_checkpoints():
    images, labels = _data()
    events = []
    g, result = train_gan(images, labels, settings=_settings(conditional=True), on_event=events.append,
                          score=lambda gen, epoch: {"fake": float(epoch)})
    progress = [e for e in events if isinstance(e, Progress)]
    assert [p.step for p in progress] == [2, 4, 6] and progress[-1].total_steps == 6
    assert {"d_loss", "g_loss", "d_x", "d_g_z", "steps_per_second"} <= set(progress[-1].values)
    assert all(0 <= p.values["d_x"] <= 1 and 0 <= p.values["d_g_z"] <= 1 for p in progress)
    frames = [e for e in events if isinstance(e, Frame)]
    assert [f.step for f in frames] == [3, 6] and frames[0].image.shape == (152, 152, 3)  # 5x5 of 28 px + 2 px gaps
    # 24 images at batch 8: 3 steps an epoch, so epochs end at steps 3 and 6.
    assert [e.step for e in events if isinstance(e, Scores)] == [3, 6]
    assert [e.step for e in events if isinstance(e, TrainingCheckpoint)] == [3, 6]
    assert g.classes == 10 and not g.training and result.stats.steps == 6
    assert result.image.shape == frames[-1].image.shape


def test_a_resumed_run_ends_where_an_unbroken_one_does():
    images, _ = _data()
    s = _settings(ema=0.9)  # the moving average is part of the state too
    whole, _ = train_gan(images, settings=s)
    saved = []
    train_gan(images, settings=s.__class__(**{**s.__dict__, "steps": 3}),
              on_event=lambda e: saved.append(e) if isinstance(e, TrainingCheckpoint) else None)
    resumed, _ = train_gan(images, settings=s, resume=saved[-1].state)
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), k


def test_the_kept_generator_is_the_moving_average_when_asked():
    images, _ = _data()
    plain, _ = train_gan(images, settings=_settings(ema=0.0))
    averaged, _ = train_gan(images, settings=_settings(ema=0.5))
    # The same run (same seeds) but what is kept differs: the average lags the last weights.
    assert not torch.allclose(plain.project.weight, averaged.project.weight)


def test_cancel_stops_within_a_step():
    images, _ = _data()
    cancel, steps = threading.Event(), []

    def on_event(e):
        if isinstance(e, Progress):
            steps.append(e.step)
            cancel.set()

    with pytest.raises(RenderCancelled):
        train_gan(images, settings=_settings(steps=50), on_event=on_event, cancel=cancel)
    assert steps == [2]


def test_grid_layout_and_grey_to_rgb():
    cells = torch.stack([torch.full((1, 4, 4), v) for v in (-1.0, 1.0, 0.0)])
    grid = sample_grid(cells, 2, pad=1)
    assert grid.shape == (11, 11, 3)
    assert grid[1, 1].tolist() == [0, 0, 0] and grid[1, 6].tolist() == [255, 255, 255]
    assert grid[6, 6].tolist() == [64, 64, 64]  # the empty fourth cell stays the background


def test_slerp_keeps_the_ends_and_the_norm():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(64), rng.standard_normal(64)
    assert np.allclose(slerp(a, b, 0), a) and np.allclose(slerp(a, b, 1), b)
    mid = slerp(a, b, 0.5)
    assert np.linalg.norm(mid) > 0.9 * min(np.linalg.norm(a), np.linalg.norm(b))  # a lerp would sag to ~0.7x
    walk = walk_latents(SampleSettings(walk=8, walk_keys=4, seed=3), 16)
    assert walk.shape == (8, 16) and np.allclose(walk[0], np.random.default_rng(3).standard_normal(16))
    assert np.allclose(walk[2], np.random.default_rng(4).standard_normal(16))  # a key every walk/keys frames


def test_fid_is_zero_for_the_same_statistics_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((400, 16))
    stats = (feats.mean(0), np.cov(feats, rowvar=False))
    assert abs(fid(stats, feats)) < 1e-6
    assert fid(stats, feats + 1.0) == pytest.approx(16.0, rel=1e-6)  # the squared mean shift, 16 x 1^2
