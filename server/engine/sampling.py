"""Sampling a generator on onnxruntime: a grid of samples, or a latent walk.

A walk passes through `walk_keys` noise vectors (seeds seed, seed+1, ...) and back to the first,
by spherical interpolation (Shoemake's slerp, as White's "Sampling Generative Networks" advises
for Gaussian latents: a straight line between two samples runs through the low-norm middle of the
distribution, where a generator has rarely been, and fades). Each frame goes out as it is made.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
from PIL import Image

from dreamrender.settings import SampleSettings

from .events import AnimationFrame, EventSink, Frame, Progress, RenderStats, Result
from .gan import sample_grid
from .imaging import preview_array
from .runtime import CancelToken, check_cancel

__all__ = ["render_samples", "slerp", "walk_latents"]

_BATCH = 64  # samples per onnxruntime run


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation from `a` (t = 0) to `b` (t = 1); linear where they are parallel."""
    na, nb = a / np.linalg.norm(a), b / np.linalg.norm(b)
    omega = float(np.arccos(np.clip(np.dot(na, nb), -1.0, 1.0)))
    if omega < 1e-6:
        return (1 - t) * a + t * b
    return (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.sin(omega)


def walk_latents(s: SampleSettings, latent: int) -> np.ndarray:
    """(walk, latent) float32: a closed loop through the seeded key vectors."""
    keys = [np.random.default_rng(s.seed + k).standard_normal(latent) for k in range(s.walk_keys)]
    frames = []
    for i in range(s.walk):
        pos = i * s.walk_keys / s.walk
        k, t = int(pos), pos - int(pos)
        frames.append(slerp(keys[k], keys[(k + 1) % s.walk_keys], t))
    return np.asarray(frames, np.float32)


def _labels(s: SampleSettings, n: int, classes: int, rng: np.random.Generator) -> np.ndarray | None:
    if not classes:
        return None
    idx = np.full(n, s.label) if s.label >= 0 else rng.integers(0, classes, n)
    return np.eye(classes, dtype=np.float32)[idx]


def _generate(session: Any, z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    out = []
    for i in range(0, len(z), _BATCH):
        feed = {"z": z[i:i + _BATCH]} | ({"label": y[i:i + _BATCH]} if y is not None else {})
        out.append(session.run(["image"], feed)[0])
    return np.concatenate(out)


def _cells(images: np.ndarray, side: int) -> np.ndarray:
    """(N, C, H, W) in [-1, 1], each resized to `side` (0: kept), as float32."""
    if not side or side == images.shape[-1]:
        return images
    out = []
    for img in images:
        u8 = ((np.clip(img, -1, 1) + 1) * 127.5).round().astype(np.uint8).transpose(1, 2, 0)
        pil = Image.fromarray(u8[..., 0] if u8.shape[-1] == 1 else u8)
        big = np.asarray(pil.resize((side, side), Image.Resampling.LANCZOS), np.float32) / 127.5 - 1
        out.append(big[None] if big.ndim == 2 else big.transpose(2, 0, 1))
    return np.stack(out)


def render_samples(session: Any, *, settings: SampleSettings, latent: int, classes: int, name: str,
                   on_event: EventSink, cancel: CancelToken | None = None) -> None:
    """Samples of the generator `session` runs (inputs z [+ label], output image in [-1, 1]).

    A grid: one Progress, then the Result. A walk: per frame a Progress, a preview Frame and an
    AnimationFrame (the server encodes the animation), then the Result (its last frame).
    """
    import torch

    s, started = settings, time.perf_counter()
    rng = np.random.default_rng(s.seed)
    if not s.walk:
        z = rng.standard_normal((s.count, latent)).astype(np.float32)
        images = _cells(_generate(session, z, _labels(s, s.count, classes, rng)), s.cell_side)
        columns = s.columns or int(np.ceil(np.sqrt(s.count)))
        grid = sample_grid(torch.from_numpy(images), min(columns, s.count))
        elapsed = time.perf_counter() - started
        on_event(Progress("sample", 0, 1, 1, 1, {"samples": float(s.count)}, elapsed, 0.0))
        on_event(Result(grid, RenderStats(grid.shape[1], grid.shape[0], 1, elapsed, name, "onnxruntime", s.seed)))
        return
    zs = walk_latents(s, latent)
    y = _labels(s, 1, classes, rng)  # one class for the whole walk: the noise moves, not the label
    frame = None
    for i, z in enumerate(zs):
        check_cancel(cancel)
        img = _cells(_generate(session, z[None], y), s.cell_side)
        frame = sample_grid(torch.from_numpy(img), 1, pad=0)
        elapsed = time.perf_counter() - started
        on_event(Progress("frame", i, len(zs), i + 1, len(zs), {}, elapsed, elapsed / (i + 1) * (len(zs) - i - 1)))
        on_event(AnimationFrame(frame, i, len(zs)))
        if s.preview.every and (i + 1) % s.preview.every == 0:
            on_event(Frame(preview_array(torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255,
                                         s.preview.max_side), i + 1, 0.0, "frame", i))
    assert frame is not None
    on_event(Result(frame, RenderStats(frame.shape[1], frame.shape[0], len(zs), time.perf_counter() - started, name,
                                       "onnxruntime", s.seed)))
