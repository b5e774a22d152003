"""The DeepDream engine: tensors in, keyword-only settings, events out through a callback.

Gradient ascent on the image (google/deepdream, Mordvintsev et al. 2015): octaves from small
to large with the added detail carried up, the gradient computed tile by tile after a random
roll so memory is bounded by the tile, and normalised each step.
"""
from __future__ import annotations

import math
from typing import Mapping

import torch

from dreamrender.errors import InvalidArgumentError, quoted
from dreamrender.models import FeatureNet, LayerSpec
from dreamrender.settings import DreamSettings, DreamTerm

from ._dream_objective import guide_features, guided_score, lap_normalize, max_lap_levels, strongest_channels, zoom_warp
from .runtime import CancelToken, WorkClock, autocast_for, check_cancel, check_finite, resolve_precision
from .imaging import fit_long_side, preview_array, resize_to, to_uint8
from .events import AnimationFrame, Checkpoint, EventSink, Frame, Progress, RenderStats, Result

__all__ = ["render_dream", "check_terms", "check_lap_levels", "check_tile_size", "octave_sizes", "tile_spans", "dream_noise", "dream_work",
           "MAX_TERMS", "GUIDE_SIDE"]

MAX_TERMS = 32  # objective terms per request: each costs a pass over its layer every tile


def dream_noise(width: int, height: int, seed: int) -> torch.Tensor:
    """Grey with faint noise, as google/deepdream starts its noise dreams (uniform + 100 of 255)."""
    g = torch.Generator().manual_seed(seed)
    return 0.4 + 0.04 * torch.rand(1, 3, height, width, generator=g)


def octave_sizes(h: int, w: int, octaves: int, scale: float, min_side: int) -> list[tuple[int, int]]:
    """Octave sizes from the smallest to (h, w); octaves below `min_side` are dropped."""
    sizes = [(h, w)]
    for i in range(1, octaves):
        oh, ow = round(h / scale**i), round(w / scale**i)
        if min(oh, ow) < min_side:
            break
        sizes.append((oh, ow))
    return sizes[::-1]


def dream_work(h: int, w: int, s: DreamSettings, min_side: int) -> float:
    """Pixel-steps a dream of an (h, w) start costs: each octave's pixels times the steps (what
    one step's forward and backward scale with; the operator's --max-work caps it), and a zoom
    animation's further frames, `steps` each at full size."""
    first = sum(oh * ow for oh, ow in octave_sizes(h, w, s.octaves, s.octave_scale, min_side)) * s.steps
    return float(first + max(0, s.zoom_frames - 1) * h * w * s.steps)


# A guide image is used at most this large (its longer side): its features are sampled anyway.
GUIDE_SIDE = 512


def check_tile_size(s: DreamSettings, h: int, w: int, min_side: int) -> None:
    """A tiled image's tiles must each be a valid input: tile_spans' tiles are at least half of
    `tile_size`, so an image tiled at all needs tile_size >= 2 * min_side (Inception v3's
    unpadded stem needs 75 px; VGG's 32 px is met by any tile_size the settings allow)."""
    if max(h, w) > s.tile_size and s.tile_size < 2 * min_side:
        raise InvalidArgumentError("tile_size", f"tiles of {s.tile_size} px may be narrower than the model's "
                                   f"{min_side} px minimum", f"at least {2 * min_side} with this model")


def check_lap_levels(s: DreamSettings, h: int, w: int, min_side: int) -> None:
    """InvalidArgumentError naming lap_levels when the smallest octave cannot be split that often."""
    if s.gradient_norm != "laplacian":
        return
    side = min(octave_sizes(h, w, s.octaves, s.octave_scale, min_side)[0])
    if s.lap_levels > max_lap_levels(side):
        raise InvalidArgumentError("lap_levels", f"{s.lap_levels} levels do not fit the smallest octave "
                                   f"({side} px on its shorter side)", f"1 to {max_lap_levels(side)}, or fewer "
                                   "octaves")


def tile_spans(n: int, tile: int) -> list[tuple[int, int]]:
    """Split [0, n) into near-equal spans of at most `tile` (no sliver tiles at the edge)."""
    count = max(1, math.ceil(n / tile))
    edges = [round(i * n / count) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _score(acts: dict[str, torch.Tensor], terms: tuple[DreamTerm, ...], objective: str) -> torch.Tensor:
    total = 0.0
    for term in terms:
        a = acts[term.layer]
        if term.channels:
            a = a[:, list(term.channels)]
        a = a.float()
        total = total + term.weight * (a.pow(2).mean() if objective == "mean_squared" else a.mean())
    return total  # type: ignore[return-value]


class _Dreamer:
    """One render's state: the net, settings, random generator and progress clock."""

    def __init__(self, net: FeatureNet, s: DreamSettings, on_event: EventSink, cancel: CancelToken | None,
                 device: torch.device, guide: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> None:
        self.net, self.s, self.on_event, self.cancel, self.device = net, s, on_event, cancel, device
        # Where to dream, at the start's size (1, 1, H, W); resized to each octave once (_mask_at).
        self.mask = None if mask is None else (1.0 - mask if s.mask_invert else mask).to(device, torch.float32)
        self._sized_mask: torch.Tensor | None = None
        self.terms = s.terms  # strongest-K terms get their channels at the first octave
        self.guide = guide
        self.guides: dict[str, torch.Tensor] | None = None
        self.layers = sorted({t.layer for t in s.terms})
        # Jitter and rolls come from a CPU generator so a seed gives the same picture on any device.
        self.gen = torch.Generator().manual_seed(s.seed)
        self.step = 0
        self.total_steps = 0
        self.clock = WorkClock(0)
        self.last_score = 0.0
        self.precision = resolve_precision(s.precision, device)

    def run(self, start: torch.Tensor) -> torch.Tensor:
        s = self.s
        base = start.to(self.device, torch.float32)
        h, w = base.shape[-2:]
        sizes = octave_sizes(h, w, s.octaves, s.octave_scale, self.net.min_side)
        self.total_steps = len(sizes) * s.steps + max(0, s.zoom_frames - 1) * s.steps
        self.clock = WorkClock(dream_work(h, w, s, self.net.min_side))
        self._prepare(base, sizes[0])
        detail = torch.zeros(1, 3, *sizes[0], device=self.device)
        img = base
        for index, size in enumerate(sizes):
            octave_base = resize_to(base, size)
            # Carry up only the detail the dream added (google/deepdream), not a resampled image.
            img = resize_to(detail, size) + octave_base
            del detail  # image-sized tensors are 200 MB each at 4096 px: hold as few as possible
            img = self._octave(img, index, len(sizes))
            detail = img - octave_base if index < len(sizes) - 1 else None
        return self._animate(img) if s.zoom_frames else img

    def _prepare(self, base: torch.Tensor, first: tuple[int, int]) -> None:
        """Before the first step: the strongest channels (chosen on the first octave, of size
        `first`, as neural-dream does; within one tile) and the guide's features, each computed once."""
        s = self.s
        if any(t.strongest for t in s.terms):
            fit = resize_to(base, fit_long_side(*first, min(max(first), s.tile_size)))
            self.terms = strongest_channels(self.net, fit, s.terms, objective=s.objective, device=self.device,
                                            precision=self.precision)
        if self.guide is not None:
            g = self.guide.to(self.device, torch.float32)
            g = resize_to(g, fit_long_side(*g.shape[-2:], min(max(g.shape[-2:]), GUIDE_SIDE)))
            self.guides = guide_features(self.net, g, self.terms, device=self.device, precision=self.precision,
                                         seed=s.seed)

    def _mask_at(self, h: int, w: int) -> torch.Tensor | None:
        """The mask at an octave's size (area-averaged down, so a soft edge stays soft)."""
        if self.mask is None:
            return None
        if self._sized_mask is None or self._sized_mask.shape[-2:] != (h, w):
            self._sized_mask = self.mask if self.mask.shape[-2:] == (h, w) else resize_to(self.mask, (h, w))
        return self._sized_mask

    def _animate(self, img: torch.Tensor) -> torch.Tensor:
        """The zoom animation: frame 0 is the dream so far; each next frame is the last one warped
        and dreamed `steps` steps at one octave. Only the current frame is held: each finished
        one leaves as an AnimationFrame (full size, for the server's encoder) and a Frame."""
        s = self.s
        self._animation_frame(img, 0)
        for index in range(1, s.zoom_frames):
            img = zoom_warp(img, zoom=s.zoom, rotate=s.rotate, shift_x=s.shift_x, shift_y=s.shift_y)
            if self.mask is not None:  # the mask follows the picture it was drawn on
                self.mask = zoom_warp(self.mask, zoom=s.zoom, rotate=s.rotate, shift_x=s.shift_x, shift_y=s.shift_y)
                self._sized_mask = None
            for _ in range(s.steps):
                check_cancel(self.cancel)
                img = self._step(img)
                self._progress(img, "frame", index, s.zoom_frames)
            self._animation_frame(img, index)
        return img

    def _animation_frame(self, img: torch.Tensor, index: int) -> None:
        self._preview(img, "frame", index)
        self.on_event(AnimationFrame(to_uint8(img), index, self.s.zoom_frames))

    def _preview(self, img: torch.Tensor, stage: str, index: int) -> None:
        self.on_event(Frame(preview_array(img, self.s.preview.max_side), self.step, self.last_score, stage, index))

    def _progress(self, img: torch.Tensor, stage: str, index: int, count: int) -> None:
        self.step += 1
        self.clock.add(img.shape[-1] * img.shape[-2])
        self.on_event(Progress(stage, index, count, self.step, self.total_steps, {"score": self.last_score},
                               self.clock.elapsed, self.clock.eta, self.precision,
                               terms=self.terms if self.step == 1 else ()))

    def _octave(self, img: torch.Tensor, index: int, count: int) -> torch.Tensor:
        img = img.clamp_(0, 1)
        for _ in range(self.s.steps):
            check_cancel(self.cancel)
            img = self._step(img)
            self._progress(img, "octave", index, count)
            every = self.s.preview.every
            if every and self.step % every == 0 and self.step % self.s.steps != 0:
                self._frame(img, index)
        self._frame(img, index)
        return img

    def _frame(self, img: torch.Tensor, index: int) -> None:
        self._preview(img, "octave", index)
        self.on_event(Checkpoint(img.detach().float().cpu().numpy().copy(), self.step, index))

    def _step(self, img: torch.Tensor) -> torch.Tensor:
        s = self.s
        h, w = img.shape[-2:]
        # One roll carries both google/deepdream's jitter and the random tile offset (so tile
        # seams move every step); it is undone on the gradient.
        jy, jx = (torch.randint(-s.jitter, s.jitter + 1, (2,), generator=self.gen).tolist()
                  if s.jitter else (0, 0))
        ty = int(torch.randint(0, s.tile_size, (1,), generator=self.gen)) if h > s.tile_size else 0
        tx = int(torch.randint(0, s.tile_size, (1,), generator=self.gen)) if w > s.tile_size else 0
        shift = ((jy + ty) % h, (jx + tx) % w)
        unrolled = self._tiled_gradient(torch.roll(img, shifts=shift, dims=(2, 3)))  # the rolled copy dies here
        grad = torch.roll(unrolled, shifts=(-shift[0], -shift[1]), dims=(2, 3))
        del unrolled
        if s.gradient_norm == "laplacian":
            grad, norm = lap_normalize(grad, s.lap_levels), 1.0  # on the whole gradient: no tile seams
        else:
            norm = float(grad.std() if s.gradient_norm == "std" else grad.abs().mean())
        mask = self._mask_at(h, w)
        if mask is not None:
            # After the normalisation, which sees the whole picture's gradient: the step's size is
            # then the unmasked dream's, and a soft edge fades it (0 leaves a pixel untouched).
            grad = grad.mul_(mask)
        # In place: the step owns `img` (each octave starts from a fresh sum, frames copy it).
        return img.add_(grad, alpha=s.step_size / 255.0 / (norm + 1e-8)).clamp_(0, 1)

    def _tiled_gradient(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        grad = torch.zeros_like(img)
        total = 0.0
        for y0, y1 in tile_spans(h, self.s.tile_size):
            for x0, x1 in tile_spans(w, self.s.tile_size):
                check_cancel(self.cancel)
                tile = img[:, :, y0:y1, x0:x1].detach().requires_grad_(True)
                # Only the network runs under autocast; _score takes its outputs back to fp32, so
                # the score's sums, the gradient w.r.t. the fp32 tile and its normalisation in
                # _step are fp32 whatever the precision.
                with autocast_for(self.device, self.precision):
                    acts = self.net(tile, self.layers)
                score = (guided_score(acts, self.terms, self.guides) if self.guides is not None
                         else _score(acts, self.terms, self.s.objective))
                (g,) = torch.autograd.grad(score, tile)
                grad[:, :, y0:y1, x0:x1] = g
                total += float(score.detach()) * (y1 - y0) * (x1 - x0)
        self.last_score = total / (h * w)
        check_finite(self.last_score, "dream score", self.step + 1)
        return grad


def check_terms(model: str, layers: Mapping[str, LayerSpec], terms: tuple[DreamTerm, ...]) -> None:
    """InvalidArgumentError naming the term field when a layer or channel does not exist."""
    if not terms:
        raise InvalidArgumentError("terms", "no objective terms", "at least one layer")
    if len(terms) > MAX_TERMS:
        raise InvalidArgumentError("terms", f"{len(terms)} terms", f"at most {MAX_TERMS}")
    for i, term in enumerate(terms):
        spec = layers.get(term.layer)
        if spec is None:
            raise InvalidArgumentError(f"terms[{i}].layer", f"unknown layer {quoted(term.layer)} of {model}", list(layers))
        # Each channel once: the list is then at most the layer's width, so its cost is bounded
        # (100,000 copies of channel 0 made one step take 12 s instead of 0.01 s).
        if term.strongest > spec.channels:
            raise InvalidArgumentError(f"terms[{i}].strongest", f"{term.strongest} channels asked of {term.layer}",
                                       f"1 to {spec.channels}")
        if len(set(term.channels)) != len(term.channels):
            raise InvalidArgumentError(f"terms[{i}].channels", f"{len(term.channels) - len(set(term.channels))} "
                                       "repeated channels", f"distinct channels, 0 to {spec.channels - 1}")
        for c in term.channels:
            if not 0 <= c < spec.channels:
                raise InvalidArgumentError(f"terms[{i}].channels", f"channel {c} out of range for {term.layer}",
                                           f"0 to {spec.channels - 1}")


def render_dream(net: FeatureNet, start: torch.Tensor, *, settings: DreamSettings,
                 on_event: EventSink | None = None, cancel: CancelToken | None = None,
                 device: torch.device | None = None, guide: torch.Tensor | None = None,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """Dream on `start` ((1, 3, H, W) RGB in [0, 1]) and return the result at the same size.

    Emits Progress once a step (the first one with the terms as run), a Frame every
    `settings.preview.every` steps and at each octave's end, and a final Result. With `guide`
    (an image), the objective is the guided one. With `mask` ((1, 1, H, W) in [0, 1], the start's
    size), each step's gradient is scaled by it (by 1 - mask with `settings.mask_invert`), at every
    octave and animation frame (warped with the frames). With `settings.zoom_frames`, an AnimationFrame
    and a Frame per animation frame follow, and the result is the last frame. Raises
    RenderCancelled within one step (one tile) of `cancel` being set. `settings.terms` must be
    filled (the service fills the model default).
    """
    check_terms(net.name, net.layer_map(), settings.terms)
    check_lap_levels(settings, *start.shape[-2:], net.min_side)
    check_tile_size(settings, *start.shape[-2:], net.min_side)
    device = device or next(net.parameters()).device
    sink = on_event or (lambda _e: None)
    if mask is not None and mask.shape[-2:] != start.shape[-2:]:
        raise InvalidArgumentError("mask", f"a {mask.shape[-1]}x{mask.shape[-2]} mask for a "
                                   f"{start.shape[-1]}x{start.shape[-2]} start", "the start's size")
    dreamer = _Dreamer(net, settings, sink, cancel, device, guide, mask)
    with torch.inference_mode(False):
        out = dreamer.run(start)
    h, w = out.shape[-2:]
    stats = RenderStats(w, h, dreamer.step, dreamer.clock.elapsed, net.name, str(device), settings.seed,
                        {"score": dreamer.last_score}, dreamer.precision)
    sink(Result(to_uint8(out), stats))
    return out.detach().cpu()
