"""The style-transfer engine (Gatys, Ecker & Bethge 2016): tensors in, settings, events out.

Content loss on feature maps, style loss on Gram matrices, total variation; L-BFGS or Adam;
several styles blended by weight; coarse-to-fine scales (as crowsonkb/style-transfer-pytorch);
the best-loss image so far is what checkpoints show and what the render returns (as
jcjohnson/neural-style keeps it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from dreamrender.errors import InvalidArgumentError, quoted
from dreamrender.models import FeatureNet
from dreamrender.settings import StyleSettings, long_side_floor, style_side

from ._gram import GuidedPart, full_precision, gram, gram_loss, guided_loss, guided_part
from ._regions import Region, guided_gram, layer_mask, mask_mass
from ._tiles import Geometry, TiledObjective, geometry, tiled_grams_and_maps, total_variation
from ._lbfgs import minimize
from .sizing import LBFGS_STORAGE, lbfgs_pairs, scale_cost, style_tile
from .runtime import CancelToken, WorkClock, autocast_for, check_cancel, check_finite, resolve_precision
from .imaging import fit_long_side, preview_array, resize_long_side, resize_to, to_uint8
from .events import Checkpoint, EventSink, Frame, Progress, RenderStats, Result

__all__ = ["render_style", "gram", "gram_loss", "scale_sides", "first_scale_side", "check_layers", "preserve_colors",
           "style_work", "render_sides", "render_sizes", "check_content_side"]


def scale_sides(size: int, scales: int, min_side: int = 64) -> list[int]:
    """Long sides of the scales, halving from `size` down; scales smaller than `min_side` are dropped."""
    sides = [size]
    for _ in range(scales - 1):
        nxt = round(sides[-1] / 2)
        if nxt < min_side:
            break
        sides.append(nxt)
    return sides[::-1]


def render_sides(s: StyleSettings, min_side: int, hw: Sequence[int]) -> list[int]:
    """Long sides of a render's scales for content of size `hw`: coarse scales under 64 px, or
    whose shorter side would be under the network's minimum, are dropped."""
    h, w = hw
    return scale_sides(s.size, s.scales, min_side=max(64, long_side_floor(min_side, h, w)))


def render_sizes(s: StyleSettings, min_side: int, hw: Sequence[int]) -> list[tuple[int, int]]:
    """(height, width) of each of a render's scales for content of size `hw`, coarse to fine."""
    return [fit_long_side(hw[0], hw[1], side) for side in render_sides(s, min_side, hw)]


def first_scale_side(s: StyleSettings, net: FeatureNet, hw: Sequence[int]) -> int:
    """The long side of a render's first (coarsest) scale: where a feed-forward init is made."""
    return render_sides(s, net.min_side, hw)[0]


def check_content_side(s: StyleSettings, min_side: int, hw: Sequence[int], field: str = "content") -> None:
    """InvalidArgumentError when the content's shorter side at `s.size` is under the network's minimum."""
    h, w = hw
    short = min(h, w) * s.size / max(h, w)
    if short < min_side:
        raise InvalidArgumentError(field, f"a {w}x{h} image has a shorter side of {short:.0f} px at size {s.size}",
                                   f"at least {min_side} px on the shorter side: size >= {long_side_floor(min_side, h, w)} "
                                   "or a less elongated image")


def style_work(h: int, w: int, s: StyleSettings, min_side: int) -> float:
    """Pixel-iterations a Gatys render of an (h, w) content costs at `s.size` (each scale's
    pixels times its iterations; the operator's --max-work caps it)."""
    sizes = render_sizes(s, min_side, (h, w))
    return float(sum(scale_cost(s, hw) * s.iterations_at(i, len(sizes), hw[0] * hw[1]) for i, hw in enumerate(sizes)))


def check_layers(model: str, names: Sequence[str], s: StyleSettings) -> None:
    """InvalidArgumentError naming the field when a requested layer is not among `names` of `model`."""
    for field, items in (("content_layers", s.content_layers), ("style_layers", s.style_layers)):
        for i, item in enumerate(items):
            if item.layer not in names:
                raise InvalidArgumentError(f"{field}[{i}].layer", f"unknown layer {quoted(item.layer)} of {model}",
                                           list(names))


_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def preserve_colors(styled: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The styled image's luminance with the content's chrominance (YIQ), as neural-style's
    -original_colors does; Gatys et al. 2016b show this keeps the photo's colours."""
    m = _YIQ.to(styled.device, styled.dtype)
    content = resize_to(content, tuple(styled.shape[-2:]))
    y = torch.einsum("ij,bjhw->bihw", m, styled)[:, :1]
    iq = torch.einsum("ij,bjhw->bihw", m, content)[:, 1:]
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(m), torch.cat([y, iq], 1)).clamp(0, 1)


@dataclass
class _Targets:
    content: dict[str, torch.Tensor]
    grams: dict[str, torch.Tensor]  # the styles' blended Grams (unguided)
    regions: tuple[Region, ...] = ()  # with masks, each style's own region and Grams instead


class _Objective:
    """Loss terms of one scale against fixed targets."""

    def __init__(self, net: FeatureNet, s: StyleSettings, targets: _Targets, device: torch.device,
                 precision: str = "fp32") -> None:
        self.net, self.s, self.t, self.device, self.precision = net, s, targets, device, precision
        self.layers = s.layer_names
        self._parts: dict[str, list[GuidedPart]] = {}  # per style layer, with regions (a scale's sizes are fixed)

    def _style(self, layer: str, feat: torch.Tensor) -> torch.Tensor:
        """One layer's style loss: against the blended Grams, or the sum of the regions' guided losses."""
        if not self.t.regions:
            return gram_loss(feat, self.t.grams[layer])
        if layer not in self._parts:
            self._parts[layer] = [self._part(r, layer, feat) for r in self.t.regions]
        return guided_loss(feat, self._parts[layer])

    @staticmethod
    def _part(r: Region, layer: str, feat: torch.Tensor) -> GuidedPart:
        if r.mask is None:
            return guided_part(r.weight, None, feat.shape[1] * feat.shape[2] * feat.shape[3], r.grams[layer])
        m = layer_mask(r.mask.to(feat.device), feat.shape[-2:])
        return guided_part(r.weight, m, feat.shape[1] * mask_mass(m), r.grams[layer])

    def __call__(self, x: torch.Tensor, precision: str | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its terms at `x`; `precision` overrides the objective's for this call."""
        s = self.s
        with autocast_for(self.device, precision or self.precision):
            feats = self.net(x, self.layers)
        # The precision boundary: the layer outputs go back to fp32 here (a no-op in fp32), so the
        # Grams, their fp32 targets, the loss sums and the gradient reaching the fp32 image (and so
        # L-BFGS's history) are fp32; only the convolutions and their backward run in bf16. Grams
        # of bf16 features kept in bf16 would lose G - A, which shrinks to a few ulps as the loss falls.
        feats = {k: full_precision(v) for k, v in feats.items()}
        # Not F.mse_loss: its gradient comes back in NCHW order, and meeting the channels_last
        # gradient of the conv above costs the backward a layout conversion.
        content = sum(l.weight * (feats[l.layer] - self.t.content[l.layer]).pow(2).mean()
                      for l in s.content_layers)
        style = sum(l.weight * self._style(l.layer, feats[l.layer]) for l in s.style_layers)
        terms = {"content": s.content_weight * content, "style": s.style_weight * style}
        if s.tv_weight:
            terms["tv"] = s.tv_weight * total_variation(x)
        total = sum(terms.values())
        return total, terms  # type: ignore[return-value]

    def loss_and_grad(self, x: torch.Tensor, precision: str | None = None) -> tuple[torch.Tensor, dict]:
        """Total loss and terms at `x`, with the gradient accumulated (as TiledObjective's)."""
        total, terms = self(x, precision)
        total.backward()
        return total, terms


def tiling(net: FeatureNet, s: StyleSettings, hw: Sequence[int]) -> tuple[Geometry, int] | None:
    """(geometry, tile side) when an image of size `hw` is processed in tiles, else None (also
    for networks whose tiles could not be exact)."""
    tile = style_tile(s, hw)
    if tile is None:
        return None
    geo = geometry(net, s.layer_names)
    return (geo, tile) if geo is not None else None


@torch.no_grad()
def _targets(net: FeatureNet, s: StyleSettings, content: torch.Tensor, styles: Sequence[torch.Tensor],
             side: int, device: torch.device, masks: Sequence[torch.Tensor | None] = (),
             source_masks: Sequence[torch.Tensor | None] = ()) -> _Targets:
    """Content features and the style Grams at one scale: computed once, no autograd, tile by tile
    for images that `tiling` says are large. Without `masks` the styles' Grams are blended by
    weight; with any, each style becomes a region with its own Grams (see _regions)."""
    c_layers = [x.layer for x in s.content_layers]
    c = resize_long_side(content, side)
    tiled = tiling(net, s, c.shape[-2:])
    if tiled:
        content_feats = tiled_grams_and_maps(net, c, gram_layers=(), map_layers=c_layers, tile=tiled[1], geo=tiled[0],
                                             device=device, precision="fp32")[1]
    else:
        content_feats = {k: v.float() for k, v in net(c.to(device), c_layers).items()}
    weights = [st.weight for st in s.styles] or [1.0] * len(styles)
    scales = [st.scale for st in s.styles] or [1.0] * len(styles)
    sources = list(source_masks) or [None] * len(styles)
    per_style = [_style_grams(net, s, img, style_side(side, scale, img.shape[-2:], net.min_side), src, device)
                 for img, scale, src in zip(styles, scales, sources)]
    if any(m is not None for m in masks):
        regions = tuple(Region(w, None if m is None else resize_to(m, tuple(c.shape[-2:])).clamp(0, 1).to(device), g)
                        for w, m, g in zip(weights, masks, per_style))
        return _Targets(content_feats, {}, regions)
    total_w = sum(weights) or 1.0
    grams = {layer: sum(g[layer] * (w / total_w) for g, w in zip(per_style, weights)) for layer in per_style[0]}
    return _Targets(content_feats, grams)  # type: ignore[arg-type]


def _style_grams(net: FeatureNet, s: StyleSettings, img: torch.Tensor, side: int, source: torch.Tensor | None,
                 device: torch.device) -> dict[str, torch.Tensor]:
    """One style image's Grams at long side `side`, guided by its own mask (`source`) when given."""
    layers = [x.layer for x in s.style_layers]
    img = resize_long_side(img, side)
    m = None if source is None else resize_to(source, tuple(img.shape[-2:])).clamp(0, 1).to(device)
    tiled = tiling(net, s, img.shape[-2:])
    if tiled:
        return tiled_grams_and_maps(net, img, gram_layers=layers, map_layers=(), tile=tiled[1], geo=tiled[0],
                                    device=device, precision="fp32", mask=m)[0]
    feats = net(img.to(device), layers)
    if m is None:
        return {layer: gram(feats[layer]) for layer in layers}
    return {layer: guided_gram(feats[layer], layer_mask(m, feats[layer].shape[-2:])) for layer in layers}


class _Tracker:
    """Counts iterations, keeps the best-loss image, emits progress and checkpoint frames."""

    def __init__(self, s: StyleSettings, on_event: EventSink, cancel: CancelToken | None, total: int,
                 clock: WorkClock, content: torch.Tensor, n_scales: int, precision: str) -> None:
        self.s, self.on_event, self.cancel, self.total, self.clock = s, on_event, cancel, total, clock
        self.precision = precision  # what the network runs in: reported with every progress event
        self.content, self.n_scales = content, n_scales
        self.step = 0
        self.scale_index = 0
        self.best: torch.Tensor | None = None
        self.best_loss = float("inf")
        self.values: dict[str, float] = {}
        self._last_frame_step = -1
        self.after_step: Callable[[], None] | None = None  # set per scale by _run_scale

    def new_scale(self, index: int) -> None:
        self.scale_index, self.best, self.best_loss = index, None, float("inf")

    def present(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().clamp(0, 1)
        return preserve_colors(x, self.content.to(x.device)) if self.s.preserve_colors else x

    def record(self, x: torch.Tensor, total: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
        """Called once per loss evaluation of the image `x` (before the optimiser moves it)."""
        loss = float(total.detach())
        check_finite(loss, "loss", self.step + 1)
        if loss < self.best_loss or self.best is None:
            self.best_loss, self.best = loss, x.detach().clone()
        self.step += 1
        self.clock.add(scale_cost(self.s, x.shape[-2:]))
        self.values = {k: float(v.detach()) for k, v in terms.items()} | {"total": loss}
        self.on_event(Progress("scale", self.scale_index, self.n_scales, self.step, self.total, self.values,
                               self.clock.elapsed, self.clock.eta, self.precision))
        every = self.s.preview.every
        if every and self.step % every == 0:
            self.frame()
        if self.after_step is not None:
            self.after_step()
        check_cancel(self.cancel)

    def start_frame(self, x: torch.Tensor) -> None:
        """The start image as step 0's preview frame (sent before the optimiser's first iteration)."""
        self.on_event(Frame(preview_array(self.present(x), self.s.preview.max_side), 0, 0.0, "scale", 0))

    def frame(self) -> None:
        assert self.best is not None
        if self.step == self._last_frame_step:
            return  # the scale's closing frame may fall on a checkpoint step: send it once
        self._last_frame_step = self.step
        self.on_event(Frame(preview_array(self.present(self.best), self.s.preview.max_side), self.step,
                            self.best_loss, "scale", self.scale_index))
        # The optimised image itself (before colour preservation) is what the loss is of.
        self.on_event(Checkpoint(self.best.float().cpu().numpy().copy(), self.step, self.scale_index))


# L-BFGS's first iterations run in fp32 whatever the precision. They take tiny steps (the first
# has L1 norm lr over every pixel), and its curvature pairs are differences of gradients across
# those steps: under bf16 that difference is mostly rounding noise, the scaling L-BFGS derives
# from it comes out far too small, and a bf16 run from a content start went nowhere for its first
# 25 iterations (bench/bench_precision.py). Once the history holds real curvature, bf16's noise
# is small next to the steps.
LBFGS_FP32_WARMUP = 10


def _run_lbfgs(x: torch.Tensor, objective: _Objective | TiledObjective, tracker: _Tracker, iterations: int, lr: float,
               history: int) -> None:
    # L-BFGS works on the image in 0-255 units, as neural-style does: its first step has L1 norm
    # lr whatever the scale, and on [0, 1] pixels that step is 255x too bold and can blow up.
    x255 = (x.detach() * 255).requires_grad_(True)
    calls = [0]

    def closure() -> torch.Tensor:
        calls[0] += 1
        img = x255 / 255
        total, terms = objective.loss_and_grad(img, None if calls[0] > LBFGS_FP32_WARMUP else "fp32")
        tracker.record(img, total, terms)  # checks cancellation between closure calls
        return total

    minimize(x255, closure, iterations=iterations, lr=lr, history=history, storage=getattr(torch, LBFGS_STORAGE))


def _run_adam(x: torch.Tensor, objective: _Objective | TiledObjective, tracker: _Tracker, iterations: int, lr: float) -> None:
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(iterations):
        opt.zero_grad(set_to_none=False)
        total, terms = objective.loss_and_grad(x)
        tracker.record(x, total, terms)
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)  # Adam's steps can leave the valid range; L-BFGS is left free, as in neural-style


def _init_image(s: StyleSettings, content: torch.Tensor, init_image: torch.Tensor | None, side: int) -> torch.Tensor:
    c = resize_long_side(content, side)
    if s.init == "noise":
        g = torch.Generator().manual_seed(s.seed)
        return torch.rand(c.shape, generator=g)
    if s.init in ("image", "feed_forward"):  # the caller made the feed-forward painting (feedforward.py)
        if init_image is None:
            raise InvalidArgumentError("init_image", f"init is {s.init!r} but no init image was given", "an image")
        return resize_to(init_image, tuple(c.shape[-2:]))
    return c


def render_style(net: FeatureNet, content: torch.Tensor, styles: Sequence[torch.Tensor], *,
                 settings: StyleSettings, init_image: torch.Tensor | None = None, on_event: EventSink | None = None,
                 cancel: CancelToken | None = None, device: torch.device | None = None,
                 between_scales: Callable[[], None] | None = None,
                 after_tiled_step: Callable[[], None] | None = None,
                 masks: Sequence[torch.Tensor | None] = (),
                 source_masks: Sequence[torch.Tensor | None] = ()) -> torch.Tensor:
    """Paint `content` in the manner of `styles` (each (1, 3, H, W) RGB in [0, 1]).

    `masks` (one per style, (1, 1, H, W) in [0, 1] of the content's aspect, or None) confine each
    style to its region (guided Grams, Gatys et al. 2017); `source_masks` (one per style, of its
    image's aspect) pick the part of each style image that defines its style.

    `between_scales` runs after each scale but the last, once that scale's tensors are freed (the
    server hands freed heap back there: a 2048 px scale needs other block sizes than the 1024 px
    one before it, and a kept heap grew by both, 3.1 GB at its peak against 2.6 GB).
    `after_tiled_step` runs after each iteration of a tiled scale (the server trims its heap
    there: tiles of unequal sizes fragment a kept heap, and a step of a large scale takes seconds,
    so handing the holes back costs little next to it).

    The output's longer side is `settings.size`. Returns the best-loss image of the last scale
    (colour-preserved when asked) and emits it as the Result.
    """
    s = settings
    _check_inputs(net, s, styles, masks, source_masks)
    device = device or next(net.parameters()).device
    net = net.with_pooling(s.pooling)
    sink = on_event or (lambda _e: None)
    check_content_side(s, net.min_side, content.shape[-2:])
    sides = render_sides(s, net.min_side, content.shape[-2:])
    sizes = render_sizes(s, net.min_side, content.shape[-2:])
    iters = [s.iterations_at(i, len(sizes), h * w) for i, (h, w) in enumerate(sizes)]
    clock = WorkClock(style_work(*content.shape[-2:], s, net.min_side))
    tracker = _Tracker(s, sink, cancel, sum(iters), clock, content, len(sides), resolve_precision(s.precision, device))
    x = None
    with torch.inference_mode(False):
        for index, side in enumerate(sides):
            targets = _targets(net, s, content, styles, side, device, masks, source_masks)
            x = _run_scale(net, s, content, targets, init_image, x, side, index, tracker, device, after_tiled_step)
            del targets
            if between_scales is not None and index + 1 < len(sides):
                between_scales()
    assert tracker.best is not None
    out = tracker.present(tracker.best)
    stats = RenderStats(out.shape[-1], out.shape[-2], tracker.step, clock.elapsed, net.name, str(device), s.seed,
                        dict(tracker.values), tracker.precision)
    sink(Result(to_uint8(out), stats))
    return out.cpu()


def _check_inputs(net: FeatureNet, s: StyleSettings, styles: Sequence[torch.Tensor],
                  masks: Sequence[torch.Tensor | None], source_masks: Sequence[torch.Tensor | None]) -> None:
    if not styles:
        raise InvalidArgumentError("styles", "no style image given", "at least one style image")
    for field, given in (("masks", masks), ("source_masks", source_masks)):
        if given and len(given) != len(styles):
            raise InvalidArgumentError(field, f"{len(given)} for {len(styles)} style images", "one per style image")
    if s.styles and len(s.styles) != len(styles):
        raise InvalidArgumentError("styles", f"{len(s.styles)} style settings for {len(styles)} images",
                                   "one entry per style image")
    check_layers(net.name, list(net.layer_map()), s)
    if s.tile_size and geometry(net, s.layer_names) is None:
        raise InvalidArgumentError("tile_size", f"{net.name}'s layers cannot be tiled exactly",
                                   "0 (untiled) with this model, or a VGG model")


def _run_scale(net: FeatureNet, s: StyleSettings, content: torch.Tensor, targets: _Targets,
               init_image: torch.Tensor | None, prev: torch.Tensor | None, side: int, index: int,
               tracker: _Tracker, device: torch.device, after_tiled_step: Callable[[], None] | None) -> torch.Tensor:
    c_shape = resize_long_side(content, side).shape[-2:]
    # Later scales start from the previous scale's best image, upsampled (coarse to fine).
    start = _init_image(s, content, init_image, side) if prev is None else resize_to(prev, tuple(c_shape))
    # A copy: when the content is already at this scale's size, resizing returns the caller's own
    # tensor, and Adam would paint over it in place (and the evaluator's content target with it).
    x = start.to(device).clone(memory_format=torch.contiguous_format).requires_grad_(True)
    tracker.new_scale(index)
    if index == 0 and s.init == "feed_forward":
        tracker.start_frame(x)  # a painting before the first iteration
    tiled = tiling(net, s, x.shape[-2:])
    tracker.after_step = after_tiled_step if tiled else None
    objective: _Objective | TiledObjective = (
        TiledObjective(net, s, targets.content, targets.grams, device, tracker.precision, geo=tiled[0], tile=tiled[1],
                       regions=targets.regions)
        if tiled else _Objective(net, s, targets, device, tracker.precision))
    iterations = s.iterations_at(index, tracker.n_scales, x.shape[-2] * x.shape[-1])
    if s.optimizer == "lbfgs":
        _run_lbfgs(x, objective, tracker, iterations, s.effective_lr, lbfgs_pairs(s, x.shape[-2] * x.shape[-1]))
    else:
        _run_adam(x, objective, tracker, iterations, s.effective_lr)
    tracker.frame()
    assert tracker.best is not None
    return tracker.best
