"""Requests in, validated settings and decoded inputs out: the one place every RPC's request is checked.

Works from the operator's limits and the model store only (not from the servicer), so it is
unit-tested without a socket. Every problem raises `InvalidArgumentError` naming the request
field, or `WeightsError` (FAILED_PRECONDITION) when a model's weights are not on this server.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dreamrender import wire
from dreamrender.errors import InvalidArgumentError, ResourceLimitError
from dreamrender.models import (FEED_FORWARD_MODELS, GeneratorInfo, GeneratorStore, ModelSpec, ModelStore, WeightsError,
                               check_generator_name, get_spec, is_available, list_specs)
from dreamrender.settings import (GAN_SIZES, DreamSettings, DreamTerm, GanSettings, PresetWeight, PreviewSettings,
                                  SampleSettings, StyleImageSettings, StyleLayer, StyleSettings, default_of, style_side,
                                  validate)
from dreamrender.v1 import dreamrender_pb2 as pb

from .codec import decode_image, probe_image
from ._checks import MAX_REPEATED, check_strings
from ._masks import probe_style_masks, read_mask, read_style_masks, refuse_style_masks
from .datasets import DataLimits, TrainingData, load_mnist, read_archive, read_images
from .engine.dream import GUIDE_SIDE, check_lap_levels, check_terms, check_tile_size, dream_noise, dream_work
from .engine.imaging import fit_long_side, resize_to, to_tensor
from .engine.sizing import MiB, dream_memory, evaluate_memory, feed_forward_memory, gan_memory, style_memory
from .engine.style import check_content_side, check_layers, render_sizes, style_work

__all__ = ["Limits", "DreamJob", "StyleJob", "EvaluateJob", "TrainJob", "SampleJob", "RequestReader", "MAX_CANDIDATES", "result_format", "check_strings",
           "dream_settings", "style_settings", "evaluate_settings"]

MAX_CANDIDATES = MAX_REPEATED["candidates"]
_SMALLER_RENDER = "a smaller size, fewer L-BFGS pairs (lbfgs_history), a smaller tile_size, or the adam optimizer"


@dataclass(frozen=True)
class Limits:
    """Operator limits on what a request may ask for (their defaults live in ServerConfig)."""

    max_input_pixels: int  # decoding refused above this (decompression bombs)
    max_side: int  # longest side of any render's output
    max_work: float = 20_000.0  # Mpx-steps: a render's pixels times its steps, summed over octaves/scales
    max_job_memory: int = 0  # bytes one job may add at its peak (engine.sizing estimates it); 0: no limit
    evaluator: bool = True  # checkpoint scoring runs beside the render (its memory counts)
    max_frames: int = 300  # frames of one zoom animation
    data: DataLimits = DataLimits()  # what one TrainGenerator request may bring


@dataclass(frozen=True)
class DreamJob:
    settings: DreamSettings
    start: torch.Tensor  # (1, 3, H, W) RGB in [0, 1], already at the render's size
    guide: torch.Tensor | None = None  # a guided dream's guide image, at most GUIDE_SIDE px
    result_format: str = "png"  # png or jpeg; webp or gif for a zoom animation
    mask: torch.Tensor | None = None  # (1, 1, H, W) grey levels at the start's size: where to dream

    @property
    def pixels(self) -> int:
        """Decoded pixels the job holds while it waits (the queue's memory budget counts them)."""
        extra = sum(t.shape[-1] * t.shape[-2] for t in (self.guide, self.mask) if t is not None)
        return self.start.shape[-1] * self.start.shape[-2] + extra


@dataclass(frozen=True)
class StyleJob:
    settings: StyleSettings
    content: torch.Tensor
    styles: tuple[torch.Tensor, ...]
    init_image: torch.Tensor | None
    result_format: str = "png"
    masks: tuple[torch.Tensor | None, ...] = ()  # per style or preset, (1, 1, H, W) at the content's size (#27)
    source_masks: tuple[torch.Tensor | None, ...] = ()  # per style, at its image's size

    @property
    def pixels(self) -> int:
        """Decoded pixels the job holds while it waits (the queue's memory budget counts them)."""
        images = [self.content, *self.styles] + ([self.init_image] if self.init_image is not None else [])
        grey = [m for m in (*self.masks, *self.source_masks) if m is not None]  # one channel of three
        return sum(t.shape[-1] * t.shape[-2] for t in images) + sum(m.shape[-1] * m.shape[-2] for m in grey) // 3


@dataclass(frozen=True)
class EvaluateJob:
    settings: StyleSettings
    content: np.ndarray
    styles: tuple[np.ndarray, ...]
    candidates: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class TrainJob:
    settings: GanSettings
    data: TrainingData

    @property
    def pixels(self) -> int:
        """Pixels the job holds while it waits (uint8, so a quarter of a float image's)."""
        return self.data.images.numel() // 12


@dataclass(frozen=True)
class SampleJob:
    settings: SampleSettings
    info: GeneratorInfo
    onnx: Path
    result_format: str = "png"  # png or jpeg; webp or gif for a walk
    pixels: int = 0


# -- request fields -> settings ------------------------------------------------------------

def _preview(req: Any, default: PreviewSettings) -> PreviewSettings:
    values = wire.read_request(req.preview, PreviewSettings, "preview.") if req.HasField("preview") else {}
    return dataclasses.replace(default, **values)


_STILL, _ANIMATED = ("png", "jpeg"), ("webp", "gif")


def result_format(req: Any, *, animation: bool = False) -> str:
    """The result encoding a request asks for: for a still, "png" unless it says JPEG; for an
    animation (a zoom dream), "webp" unless it says GIF. Unknown or unfitting values refused."""
    allowed = _ANIMATED if animation else _STILL
    fmt = wire.enum_name(pb.ImageFormat.DESCRIPTOR, req.result_format)
    if req.result_format and fmt is None:
        raise InvalidArgumentError("result_format", f"unknown enum value {req.result_format}", list(allowed))
    if fmt is not None and fmt not in allowed:
        why = "cannot hold an animation" if animation else "is for zoom animations (zoom_frames)"
        raise InvalidArgumentError("result_format", f"{fmt} {why}", list(allowed))
    return fmt or allowed[0]


def dream_settings(req: pb.RenderDreamRequest, *, default_model: str) -> DreamSettings:
    """Settings from a request; terms are left empty when the request names none."""
    values = wire.read_request(req, DreamSettings)
    terms = []
    for i, t in enumerate(req.terms):
        if not t.layer:
            raise InvalidArgumentError(f"terms[{i}].layer", "layer is empty", "a layer name from ListModels")
        weight = t.weight if t.HasField("weight") else 1.0
        terms.append(DreamTerm(t.layer, tuple(t.channels), weight, t.strongest))
    s = DreamSettings(model=req.model or default_model, terms=tuple(terms),
                      preview=_preview(req, default_of(DreamSettings, "preview")), **values)
    validate(s)
    return s


def _layer_weights(items: Any, field: str) -> tuple[StyleLayer, ...]:
    out = []
    for i, item in enumerate(items):
        if not item.layer:
            raise InvalidArgumentError(f"{field}[{i}].layer", "layer is empty", "a layer name from ListModels")
        out.append(StyleLayer(item.layer, item.weight if item.HasField("weight") else 1.0))
    return tuple(out)


def _style_parts(req: Any, default_model: str) -> dict[str, Any]:
    """Model, per-style weights/scales and layer lists: what RenderStyle and Evaluate requests share."""
    return dict(
        model=req.model or default_model,
        styles=tuple(StyleImageSettings(s.weight if s.HasField("weight") else 1.0,
                                        s.scale if s.HasField("scale") else 1.0) for s in req.styles),
        content_layers=_layer_weights(req.content_layers, "content_layers")
        or default_of(StyleSettings, "content_layers"),
        style_layers=_layer_weights(req.style_layers, "style_layers") or default_of(StyleSettings, "style_layers"))


def style_settings(req: pb.RenderStyleRequest, *, default_model: str) -> StyleSettings:
    """Settings from a request; presets without an explicit method mean feed-forward."""
    values = wire.read_request(req, StyleSettings)
    presets = tuple(PresetWeight(p.index, p.weight if p.HasField("weight") else 1.0) for p in req.presets)
    if presets and "method" not in values:
        values["method"] = "feed_forward"
    s = StyleSettings(**_style_parts(req, default_model), preview=_preview(req, default_of(StyleSettings, "preview")),
                      presets=presets, **values)
    validate(s)
    return s


def evaluate_settings(req: pb.EvaluateRequest, *, default_model: str) -> StyleSettings:
    """The StyleSettings an Evaluate request implies (only layers, weights and styles matter)."""
    values = {k: v for k, v in wire.read_request(req, StyleSettings).items()
              if k in ("content_weight", "style_weight", "tv_weight")}
    s = StyleSettings(**_style_parts(req, default_model), **values)
    validate(s)
    return s


# -- whole requests -----------------------------------------------------------------------

class RequestReader:
    """Turns each RPC's request into validated settings and decoded inputs."""

    def __init__(self, *, limits: Limits, store: ModelStore, default_dream_model: str,
                 default_style_model: str) -> None:
        self.limits = limits
        self.store = store
        self.default_dream_model = default_dream_model
        self.default_style_model = default_style_model

    def image(self, image: pb.Image, field: str, long_side: int = 0,
              size: tuple[int, int] | None = None) -> torch.Tensor:
        """A request image decoded to a (1, 3, H, W) tensor, within the pixel limit.

        With `long_side`, a larger image comes out with exactly that longer side: it is decoded
        at reduced scale where the format allows, so memory follows what the render needs. A
        smaller one keeps its size. `size` is its (width, height) when the caller probed it already.
        """
        w, h = size or self.probe(image, field)
        img = decode_image(image.data, field, max_pixels=self.limits.max_input_pixels, media_type=image.media_type,
                           min_long_side=long_side)
        t = to_tensor(img)
        if long_side and max(w, h) > long_side:
            t = resize_to(t, fit_long_side(h, w, long_side))  # from the header's size: no rounding drift
        return t

    def probe(self, image: pb.Image, field: str) -> tuple[int, int]:
        """(width, height) from the image's header: every limit is checked before anything decodes."""
        return probe_image(image.data, field, max_pixels=self.limits.max_input_pixels, media_type=image.media_type)

    def check_work(self, work: float, field: str, what: str) -> None:
        """InvalidArgumentError when a render's pixel-steps exceed the operator's --max-work."""
        if work > self.limits.max_work * 1e6:
            raise InvalidArgumentError(field, f"work estimate {work / 1e6:,.0f} Mpx-steps ({what}) is over the "
                                       "server's limit", f"at most {self.limits.max_work:,.0f} Mpx-steps")

    def check_memory(self, need: int, field: str, what: str, allowed: str = _SMALLER_RENDER) -> None:
        """ResourceLimitError (RESOURCE_EXHAUSTED) when a job's estimated peak memory is over the
        operator's --max-job-memory: refused before any work, rather than killed by the machine."""
        limit = self.limits.max_job_memory
        if limit and need > limit:
            raise ResourceLimitError(field, f"the work ({what}) would need about {need / MiB:,.0f} MB at its peak, "
                                            f"over this server's --max-job-memory of {limit / MiB:,.0f} MB", allowed)

    def check_side(self, side: int, field: str) -> None:
        if side > self.limits.max_side:
            raise InvalidArgumentError(field, f"{side} px is over the server's limit", f"at most {self.limits.max_side}")

    def available_spec(self, name: str, *, kind: str = "features") -> ModelSpec:
        """The catalog entry `name` of `kind`, whose weights must be in the store."""
        spec = get_spec(name)
        if spec.kind != kind:
            raise InvalidArgumentError("model", f"{name} is a {spec.kind} network",
                                       [x.name for x in list_specs() if x.kind == kind])
        if not is_available(spec, self.store):
            raise WeightsError(f"weights of {name!r} are not on this server; run: dreamctl models pull {name}")
        return spec

    def feed_forward_specs(self, which: str) -> list[ModelSpec]:
        """The feed-forward networks `which` ("arbitrary" or "presets") needs, all in the store."""
        names = FEED_FORWARD_MODELS[which]
        missing = [n for n in names if not is_available(get_spec(n), self.store)]
        if missing:
            raise WeightsError(f"feed-forward networks {', '.join(missing)} are not on this server; "
                               f"run: dreamctl models pull {' '.join(missing)}")
        return [get_spec(n) for n in names]

    def dream(self, req: pb.RenderDreamRequest) -> DreamJob:
        check_strings(req)
        s = dream_settings(req, default_model=self.default_dream_model)
        fmt = result_format(req, animation=s.zoom_frames > 0)
        if s.zoom_frames > self.limits.max_frames:
            raise InvalidArgumentError("zoom_frames", f"{s.zoom_frames} frames are over the server's limit",
                                       f"at most {self.limits.max_frames} (dreamd --max-frames)")
        spec = self.available_spec(s.model)
        if not s.terms:  # the model's default objective: one layer (some channels), or several
            channels = tuple(spec.extra.get("default_dream_channels", ()))
            s = dataclasses.replace(s, terms=tuple(DreamTerm(layer, channels) for layer in spec.dream_layers))
        check_terms(spec.name, {layer.name: layer for layer in spec.layers}, s.terms)
        guide_size = self._guide_size(req, spec.min_side)  # every header is checked before anything decodes
        mask_size = self.probe(req.mask, "mask") if req.HasField("mask") else None
        start = self._dream_start(req, s, spec.min_side)
        guide = self.image(req.guide, "guide", GUIDE_SIDE, size=guide_size) if guide_size else None
        mask = read_mask(lambda side: self.image(req.mask, "mask", side, size=mask_size), mask_size,
                         start.shape[-2:], "mask", invert=s.mask_invert) if mask_size else None
        return DreamJob(s, start, guide, fmt, mask=mask)

    def _guide_size(self, req: pb.RenderDreamRequest, min_side: int) -> tuple[int, int] | None:
        """A guided dream's guide (width, height) from its header, or None without a guide."""
        if not req.HasField("guide"):
            return None
        w, h = self.probe(req.guide, "guide")
        if min(fit_long_side(h, w, min(max(h, w), GUIDE_SIDE))) < min_side:
            raise InvalidArgumentError("guide", f"a {w}x{h} guide is too small or too elongated",
                                       f"at least {min_side} px on its shorter side at {GUIDE_SIDE} px")
        return w, h

    def _dream_start(self, req: pb.RenderDreamRequest, s: DreamSettings, min_side: int) -> torch.Tensor:
        which = req.WhichOneof("start")
        if which is None:
            raise InvalidArgumentError("start", "neither image nor noise given", "image or noise")
        if which == "noise":
            w, h = req.noise.width, req.noise.height
            for field, v in (("noise.width", w), ("noise.height", h)):
                if not min_side <= v <= self.limits.max_side:
                    raise InvalidArgumentError(field, f"{v} is out of range", f"{min_side} to {self.limits.max_side}")
        else:
            w, h = probed = self.probe(req.image, "image")
        if s.size:
            self.check_side(s.size, "size")
            h, w = fit_long_side(h, w, s.size)
        self.check_side(max(h, w), "image" if which == "image" and not s.size else "size")
        if min(h, w) < min_side:
            raise InvalidArgumentError("size" if s.size else which, f"shorter side {min(h, w)} px is too small",
                                       f"at least {min_side} px")
        check_lap_levels(s, h, w, min_side)
        check_tile_size(s, h, w, min_side)
        frames = f", {s.zoom_frames} frames" if s.zoom_frames else ""
        self.check_work(dream_work(h, w, s, min_side), "steps", f"{w}x{h}, {s.octaves} octaves x {s.steps} steps{frames}")
        self.check_memory(dream_memory(h, w, s, evaluator=self.limits.evaluator), "size", f"a {w}x{h} dream in {s.tile_size} px tiles")
        if which == "noise":
            start = dream_noise(w, h, req.seed)
        else:
            start = self.image(req.image, "image", s.size, size=probed)
        return resize_to(start, (h, w))  # a no-op unless a smaller image is scaled up to `size`

    def _content_and_styles(self, req: Any, s: StyleSettings, min_side: int, content_side: int,
                            content_size: tuple[int, int]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The content and style images of a RenderStyle or Evaluate request: every style header
        checked (sizes, shapes the network can take, the server's limits) before any image decodes,
        then each decoded at the size the render uses (`content_side`: the content's longer side;
        `content_size`: the content's probed (width, height))."""
        if not req.styles and not s.presets:
            raise InvalidArgumentError("styles", "no style image", "at least one style image (or presets)")
        if req.styles and sum(st.weight for st in s.styles) <= 0:
            raise InvalidArgumentError("styles[0].weight", "style weights sum to 0", "weights >= 0 with a positive sum")
        sides, sizes = [], []
        for i, st in enumerate(req.styles):
            sw, sh = self.probe(st.image, f"styles[{i}].image")
            sizes.append((sw, sh))
            side = style_side(content_side, s.styles[i].scale, (sh, sw), min_side)
            if side > self.limits.max_side:
                # A large scale, or a style so elongated that its shorter side needs this much.
                field = f"styles[{i}].scale" if round(content_side * s.styles[i].scale) > self.limits.max_side \
                    else f"styles[{i}].image"
                raise InvalidArgumentError(field, f"the style would be used at {side} px, over the server's limit",
                                           f"at most {self.limits.max_side} px: a smaller scale or size, or a less "
                                           "elongated image")
            sides.append(side)
        content = self.image(req.content, "content", content_side, size=content_size)
        return content, tuple(self.image(st.image, f"styles[{i}].image", sides[i], size=sizes[i])
                              for i, st in enumerate(req.styles))

    def _content_size(self, req: Any) -> tuple[int, int]:
        """The content image's (width, height) from its header."""
        if not req.HasField("content"):
            raise InvalidArgumentError("content", "no content image", "an encoded image")
        return self.probe(req.content, "content")

    def style(self, req: pb.RenderStyleRequest) -> StyleJob:
        """Everything a style render needs, checked."""
        check_strings(req)
        fmt = result_format(req)
        s = style_settings(req, default_model=self.default_style_model)
        if s.method == "feed_forward":
            min_side = self._check_feed_forward(req, s)
        else:
            spec = self.available_spec(s.model)
            check_layers(spec.name, spec.layer_names, s)
            if s.presets:
                raise InvalidArgumentError("presets", "presets are feed-forward styles", "method feed_forward")
            if s.init == "feed_forward":
                self.feed_forward_specs("arbitrary")
            min_side = spec.min_side
        self.check_side(s.size, "size")
        cw, ch = content_size = self._content_size(req)
        check_content_side(s, min_side, (ch, cw))
        sizes = render_sizes(s, min_side, (ch, cw))
        h, w = sizes[-1]
        if s.method == "feed_forward":  # onnxruntime's arena grows with the picture (#28 D23)
            self.check_memory(feed_forward_memory(h, w), "size", f"a {w}x{h} feed-forward painting", "a smaller size")
        else:
            self.check_work(style_work(ch, cw, s, min_side), "iterations",
                            f"size {s.size}, {s.scales} scales x {s.iterations} iterations")
            self.check_memory(style_memory(sizes, s, evaluator=self.limits.evaluator), "size", f"{w}x{h} {s.optimizer}")
        if s.init == "image" and not req.HasField("init_image"):
            raise InvalidArgumentError("init_image", "init is IMAGE but no init_image given", "an encoded image")
        init_size = self.probe(req.init_image, "init_image") if s.init == "image" else None
        wanted = probe_style_masks(self, req, content_size, [self.probe(st.image, f"styles[{i}].image")
                                                             for i, st in enumerate(req.styles)])
        content, styles = self._content_and_styles(req, s, min_side, s.size, content_size)
        init = None if init_size is None else self.image(req.init_image, "init_image", s.size, size=init_size)
        masks, sources = read_style_masks(self, wanted, len(styles) or len(s.presets), content.shape[-2:],
                                          [t.shape[-2:] for t in styles])
        return StyleJob(s, content, styles, init, fmt, masks, sources)

    def _check_feed_forward(self, req: pb.RenderStyleRequest, s: StyleSettings) -> int:
        """Checks a feed-forward request; returns the smallest side its networks take."""
        if s.presets and req.styles:
            raise InvalidArgumentError("presets", "presets together with style images", "presets or style images")
        if not s.presets and not req.styles:
            raise InvalidArgumentError("styles", "no style image and no preset", "style images or presets")
        specs = self.feed_forward_specs("presets" if s.presets else "arbitrary")
        count = specs[0].presets
        for i, p in enumerate(s.presets):
            if not 0 <= p.index < count:
                raise InvalidArgumentError(f"presets[{i}].index", f"preset {p.index} does not exist",
                                           f"0 to {count - 1}")
        if s.presets and sum(p.weight for p in s.presets) <= 0:
            raise InvalidArgumentError("presets", "preset weights sum to 0", "weights >= 0 with a positive sum")
        if s.init == "feed_forward":
            raise InvalidArgumentError("init", "feed_forward is an init of the optimiser", "method optimize")
        # A painting network takes no part of its style image.
        refuse_style_masks(req, ("source_mask",), "source masks guide the Gatys method's Grams", "method optimize")
        if s.precision == "bf16":  # onnxruntime runs these networks in fp32; auto resolves to it
            raise InvalidArgumentError("precision", "feed-forward runs in fp32 on onnxruntime", ["fp32", "auto"])
        return max(spec.min_side for spec in specs)

    def evaluate(self, req: pb.EvaluateRequest) -> EvaluateJob:
        """An Evaluate request's settings and images (candidates within the model's and server's sizes)."""
        check_strings(req)
        s = evaluate_settings(req, default_model=self.default_style_model)
        spec = self.available_spec(s.model)
        if not spec.supports_style and not req.content_layers and not req.style_layers:
            raise InvalidArgumentError("model", f"{spec.name} lacks the default style layers", [x.name for x in list_specs() if x.supports_style])
        check_layers(spec.name, spec.layer_names, s)
        if not req.candidates:
            raise InvalidArgumentError("candidates", "no candidate images", f"1 to {MAX_CANDIDATES} images")
        refuse_style_masks(req, ("mask", "source_mask"), "Evaluate scores whole pictures", "no mask")
        sizes = []
        for i, c in enumerate(req.candidates):  # every header before any pixel decodes
            w, h = self.probe(c, f"candidates[{i}]")
            if min(w, h) < spec.min_side:
                raise InvalidArgumentError(f"candidates[{i}]", f"shorter side {min(w, h)} px is too small",
                                           f"at least {spec.min_side} px")
            self.check_side(max(w, h), f"candidates[{i}]")
            sizes.append((w, h))
        big = max(sizes, key=lambda wh: wh[0] * wh[1])
        self.check_memory(evaluate_memory([(h, w) for w, h in sizes]), "candidates",
                          f"scoring a {big[0]}x{big[1]} candidate", "smaller candidates")
        content, styles = self._content_and_styles(req, s, spec.min_side, max(max(wh) for wh in sizes),
                                                   self._content_size(req))
        cands = tuple(self.image(c, f"candidates[{i}]", size=sizes[i]).numpy() for i, c in enumerate(req.candidates))
        return EvaluateJob(s, content.numpy(), tuple(x.numpy() for x in styles), cands)

    def train(self, req: pb.TrainGeneratorRequest) -> TrainJob:
        """A TrainGenerator request's settings and data (every limit checked before decoding)."""
        check_strings(req)
        values = wire.read_request(req, GanSettings)
        s = GanSettings(name=check_generator_name(req.name), preview=_preview(req, default_of(GanSettings, "preview")),
                        **values)
        validate(s)
        if s.size not in GAN_SIZES:
            raise InvalidArgumentError("size", f"{s.size} px is not offered", [str(x) for x in GAN_SIZES])
        if s.channels not in (0, 1, 3):
            raise InvalidArgumentError("channels", f"{s.channels} channels", ["1", "3"])
        own = s.dataset == "images"
        if s.conditional and own:
            raise InvalidArgumentError("conditional", "the caller's images have no labels", "dataset mnist or mnist_full")
        if not own and (req.images or req.archive):
            raise InvalidArgumentError("images" if req.images else "archive", f"given with dataset {s.dataset}",
                                       "images or an archive only with dataset images")
        if own and req.images and req.archive:
            raise InvalidArgumentError("archive", "given together with images", "images or one archive, not both")
        if own and not req.images and not req.archive:
            raise InvalidArgumentError("images", "dataset images but no images or archive", "images, or an archive")
        if own and len(req.images) > self.limits.data.max_images:
            raise InvalidArgumentError("images", f"{len(req.images):,} images",
                                       f"at most {self.limits.data.max_images:,}")
        self.check_memory(gan_memory(s, self._dataset_size(req, s)), "batch", f"batch {s.batch} at {s.size} px")
        kw = dict(size=s.size, channels=s.image_channels, limits=self.limits.data)
        if s.dataset in ("mnist", "mnist_full"):
            self.available_spec(s.dataset, kind="dataset")
            data = load_mnist(self.store, s.dataset, s.size, s.image_channels)
        elif req.archive:
            data = read_archive(req.archive, **kw)
        else:
            data = read_images([(f"images[{i}]", im.data) for i, im in enumerate(req.images)], **kw)
        return TrainJob(s, data)

    def _dataset_size(self, req: pb.TrainGeneratorRequest, s: GanSettings) -> int:
        """Images the run will hold (before any is read): MNIST's count, or the request's."""
        return {"mnist": 5_000, "mnist_full": 50_000}.get(s.dataset, len(req.images) or self.limits.data.max_images)

    def sample(self, req: pb.RenderSampleRequest, namespace: str) -> SampleJob:
        """A RenderSample request: settings, and the generator (the caller's or the catalog's)."""
        check_strings(req)
        values = wire.read_request(req, SampleSettings)
        s = SampleSettings(generator=req.generator, preview=_preview(req, default_of(SampleSettings, "preview")),
                           **values)
        validate(s)
        fmt = result_format(req, animation=s.walk > 0)
        if s.walk > self.limits.max_frames:
            raise InvalidArgumentError("walk", f"{s.walk} frames are over the server's limit",
                                       f"at most {self.limits.max_frames} (dreamd --max-frames)")
        info, path = GeneratorStore(self.store).get(req.generator, namespace)
        if s.label >= 0 and not info.classes:
            raise InvalidArgumentError("label", f"{info.name} is not conditional", "no label (or -1)")
        if s.label >= info.classes > 0:
            raise InvalidArgumentError("label", f"class {s.label} does not exist", f"0 to {info.classes - 1}")
        side = s.cell_side or info.size
        grid = 1 if s.walk else s.count
        self.check_side(side * int(np.ceil(np.sqrt(grid))), "cell_side" if s.cell_side else "count")
        return SampleJob(s, info, path, fmt, pixels=side * side * grid)
