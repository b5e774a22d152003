"""Render settings: one dataclass per render kind, holding every default.

The server's request validation, the wire conversion and dreamctl's flags are all derived
from these classes (their field metadata gives help text, ranges and choices), so a default
lives here and nowhere else. Torch-free: the client imports it too.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from .errors import InvalidArgumentError, quoted

__all__ = ["PreviewSettings", "DreamTerm", "DreamSettings", "StyleLayer", "StyleImageSettings", "PresetWeight",
           "StyleSettings", "validate", "setting_fields", "default_of", "choices_of", "DEFAULT_MODEL", "STYLE_CONTENT_LAYERS",
           "STYLE_STYLE_LAYERS", "MAX_MESSAGE_MB", "PRECISION_CHOICES", "style_side", "long_side_floor",
           "LARGE_SCALE_PIXELS", "GanSettings", "SampleSettings", "GAN_SIZES", "GAN_DATASETS"]

# The network both render kinds use unless a request (or dreamd's --default-*-model) names another.
DEFAULT_MODEL = "vgg16"
# Gatys et al.'s layers, as neural-style uses them: the style defaults, what a model must have to
# "support style", and what the evaluator's pre-built export exposes.
STYLE_CONTENT_LAYERS = ("relu4_2",)
STYLE_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
# What the feature network's convolutions run in: fp32 (the reference), bf16 (autocast; images,
# Grams, losses and optimiser state stay fp32) or auto (bf16 where the device has it natively).
# The default is auto because bench/bench_precision.py showed the loss holds (README: Precision):
# at 512 px, 300 iterations scored in fp32 by the evaluator, L-BFGS +0.53% and Adam +0.14% of
# fp32's loss at 0.56x / 0.57x the s/iter; dreams 0.53x the time. Without native bf16 it is fp32.
PRECISION_CHOICES = ("fp32", "bf16", "auto")
_PRECISION_HELP = ("network arithmetic: fp32 (reference), bf16 (convolutions under autocast; image, Grams, "
                   "losses and optimiser state stay fp32) or auto (bf16 where the device runs it natively)")
# The largest gRPC message, each way, that dreamd and the SDK accept by default.
MAX_MESSAGE_MB = 64


def _opt(default: Any, help: str, *, lo: float | None = None, hi: float | None = None,
         choices: tuple[str, ...] | None = None, lo_open: bool = False, cli: bool = True) -> Any:
    """A settings field with the metadata validation and the CLI read."""
    meta = {"help": help, "lo": lo, "hi": hi, "choices": choices, "lo_open": lo_open, "cli": cli}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class PreviewSettings:
    """Preview frames streamed while a render runs."""

    every: int = _opt(5, "send a preview frame every N steps (0: only at each octave/scale end)", lo=0, hi=100000)
    max_side: int = _opt(512, "longer side of preview frames in pixels", lo=16, hi=4096)
    format: str = _opt("jpeg", "encoding of preview frames", choices=("jpeg", "png"))


@dataclass(frozen=True)
class DreamTerm:
    """One objective term: a layer, optionally some channels, and a weight."""

    layer: str
    channels: tuple[int, ...] = ()
    weight: float = 1.0
    strongest: int = 0  # use the layer's K most active channels on the input (0: `channels`, or all)


@dataclass(frozen=True)
class DreamSettings:
    """DeepDream settings. Defaults follow google/deepdream where it has one."""

    model: str = _opt(DEFAULT_MODEL, "catalog model (see `dreamctl models`)", cli=False)
    terms: tuple[DreamTerm, ...] = field(default=(), metadata={"help": "objective terms (empty: the model's default layer)"})
    objective: str = _opt("mean_squared", "score of a layer's activations", choices=("mean", "mean_squared"))
    gradient_norm: str = _opt("std", "what the gradient is divided by each step: its std, mean absolute value, or "
                                     "per band of a Laplacian pyramid (smoother, larger structures)",
                              choices=("std", "mean_abs", "laplacian"))
    lap_levels: int = _opt(4, "frequency bands of --gradient-norm laplacian", lo=1, hi=8)
    octaves: int = _opt(4, "number of octaves (image scales)", lo=1, hi=12)
    octave_scale: float = _opt(1.4, "size ratio between neighbouring octaves", lo=1.0, hi=4.0, lo_open=True)
    steps: int = _opt(10, "gradient steps per octave", lo=1, hi=1000)
    step_size: float = _opt(1.5, "step size in 0-255 pixel units", lo=0.0, hi=255.0, lo_open=True)
    tile_size: int = _opt(512, "gradient tile side in pixels (bounds memory)", lo=64, hi=8192)
    jitter: int = _opt(32, "random shift in pixels before each step", lo=0, hi=1024)
    seed: int = _opt(0, "seed of noise, jitter and tile rolls", lo=0, hi=2**63 - 1)
    size: int = _opt(0, "resize the input so its longer side is this (0: keep)", lo=0, hi=16384)
    precision: str = _opt("auto", _PRECISION_HELP, choices=PRECISION_CHOICES)
    zoom_frames: int = _opt(0, "frames of a zoom animation (0: a still dream); each frame is the previous one "
                               "zoomed and dreamed --steps steps at one octave", lo=0, hi=100_000)
    zoom: float = _opt(1.05, "zoom factor per animation frame (below 1 zooms out)", lo=0.5, hi=2.0)
    rotate: float = _opt(0.0, "degrees turned per animation frame", lo=-45.0, hi=45.0)
    shift_x: int = _opt(0, "pixels the picture moves right per animation frame", lo=-256, hi=256)
    shift_y: int = _opt(0, "pixels the picture moves down per animation frame", lo=-256, hi=256)
    frame_ms: int = _opt(80, "milliseconds each animation frame shows", lo=10, hi=10_000)
    mask_invert: bool = _opt(False, "dream where the mask is dark instead of where it is light")
    preview: PreviewSettings = field(default=PreviewSettings(), metadata={"help": "preview frames"})


@dataclass(frozen=True)
class StyleLayer:
    """A layer and its weight within the content or style loss."""

    layer: str
    weight: float = 1.0


@dataclass(frozen=True)
class StyleImageSettings:
    """Per-style blend weight (normalised over all styles) and scale relative to the output."""

    weight: float = 1.0
    scale: float = 1.0


@dataclass(frozen=True)
class PresetWeight:
    """One fixed style of the 26-style feed-forward network, and its blend weight."""

    index: int
    weight: float = 1.0


@dataclass(frozen=True)
class StyleSettings:
    """Gatys et al. style transfer settings."""

    model: str = _opt(DEFAULT_MODEL, "catalog model with VGG layer names", cli=False)
    size: int = _opt(512, "longer side of the output in pixels", lo=16, hi=16384)
    scales: int = _opt(3, "number of scales, coarse to fine (1: classic single size)", lo=1, hi=8)
    iterations: int = _opt(100, "optimiser iterations per scale", lo=1, hi=100000)
    coarse_iterations: int = _opt(0, "iterations at each scale below the full size (0: same as --iterations)",
                                  lo=0, hi=100000)
    optimizer: str = _opt("lbfgs", "optimisation method", choices=("lbfgs", "adam"))
    learning_rate: float = _opt(0.0, "learning rate (0: 1.0 for lbfgs, 0.02 for adam)", lo=0.0, hi=1000.0)
    tile_size: int = _opt(0, "compute the loss in tiles of this side when a scale is larger, in the same memory "
                             "whatever the size (exact; about 2x the work); 0: auto, 512 px tiles above 1 Mpx",
                          lo=0, hi=16384)
    large_iterations: int = _opt(30, "iterations of a full-size scale over 1 Mpx that follows coarser ones: it "
                                     "refines what they painted, as neural-style's multires scripts do "
                                     "(0: --iterations)", lo=0, hi=100000)
    lbfgs_history: int = _opt(100, "L-BFGS correction pairs kept at most (each costs two image-sized float16 "
                                   "vectors; fewer are kept where they would pass 100 MiB, never under 5)",
                              lo=1, hi=1000)
    content_weight: float = _opt(1.0, "weight of the content loss", lo=0.0, hi=1e12)
    style_weight: float = _opt(1e-4, "weight of the style loss", lo=0.0, hi=1e12)
    tv_weight: float = _opt(0.0, "weight of the total-variation loss", lo=0.0, hi=1e12)
    content_layers: tuple[StyleLayer, ...] = field(default=tuple(StyleLayer(n) for n in STYLE_CONTENT_LAYERS),
                                                   metadata={"help": "content layers"})
    style_layers: tuple[StyleLayer, ...] = field(default=tuple(StyleLayer(n) for n in STYLE_STYLE_LAYERS),
                                                 metadata={"help": "style layers"})
    styles: tuple[StyleImageSettings, ...] = field(default=(), metadata={"help": "one entry per style image"})
    init: str = _opt("content", "start image (feed_forward: the feed-forward painting of the same styles)",
                     choices=("content", "noise", "image", "feed_forward"))
    method: str = _opt("optimize", "optimize (Gatys et al.) or feed_forward (one pass of a pretrained network on "
                                   "onnxruntime; presets imply it)", choices=("optimize", "feed_forward"))
    strength: float = _opt(1.0, "feed-forward: 0 keeps the photo, 1 is the full style", lo=0.0, hi=1.0)
    presets: tuple[PresetWeight, ...] = field(default=(), metadata={"help": "fixed styles of the 26-style network"})
    feed_forward_scores: bool = _opt(False, "feed-forward: score the result with the evaluator before it is sent "
                                            "(VGG forward passes: about 1.5 s at 512 px on 2 cores, 10x the painting)")
    seed: int = _opt(0, "seed of the noise init and any randomness", lo=0, hi=2**63 - 1)
    preserve_colors: bool = _opt(False, "keep the content's colours (luminance-only transfer)")
    pooling: str = _opt("max", "pooling layers of the network", choices=("max", "average"))
    precision: str = _opt("auto", _PRECISION_HELP + "; feed-forward runs fp32 on onnxruntime",
                          choices=PRECISION_CHOICES)
    preview: PreviewSettings = field(default=PreviewSettings(every=10), metadata={"help": "preview frames"})

    def iterations_at(self, index: int, count: int, pixels: int = 0) -> int:
        """Iterations of scale `index` of `count` (the last is the full size, of `pixels`)."""
        if index < count - 1:
            return self.coarse_iterations or self.iterations
        if count > 1 and pixels > LARGE_SCALE_PIXELS and self.large_iterations:
            return min(self.iterations, self.large_iterations)
        return self.iterations

    @property
    def layer_names(self) -> list[str]:
        """The layers the objective reads: content layers, then style layers, each once."""
        return list(dict.fromkeys([x.layer for x in self.content_layers] + [x.layer for x in self.style_layers]))

    @property
    def effective_lr(self) -> float:
        if self.learning_rate > 0:
            return self.learning_rate
        return 1.0 if self.optimizer == "lbfgs" else 0.02


# Image sides a DCGAN trains at: MNIST's own 28, CIFAR's 32, and 64 (the DCGAN paper's LSUN side).
GAN_SIZES = (28, 32, 64)
# Training data: two MNIST sets pulled with SHA-256 like weights, or the caller's own images.
GAN_DATASETS = ("mnist", "mnist_full", "images")


@dataclass(frozen=True)
class GanSettings:
    """DCGAN training settings. The shapes follow the TensorFlow DCGAN tutorial (batch 64, 5 epochs,
    one-sided label smoothing 0.1) and Adam's beta1 is Radford et al.'s 0.5. The rest departs from
    the paper, for the short runs a service is asked for: at Radford's Adam 2e-4 (beta2 0.999, one
    generator update, dropout 0.3, no average) 5 epochs of `mnist` gave a digit score of 0.27 (0.25
    conditional); with Adam 1e-3 and beta2 0.99, two generator updates per step, no dropout and a
    0.99 weight average, 0.58 (0.88 and 0.92 conditional, seeds 0 and 1). bench/bench_gan.py
    --settings sets the paper's values back (lr_g=2e-4 lr_d=2e-4 beta2=0.999 g_steps=1 ema=0
    dropout=0.3)."""

    name: str = _opt("", "name the trained generator is registered under in the model store", cli=False)
    dataset: str = _opt("mnist", "training images: mnist (5,000 digits), mnist_full (50,000) or the caller's images",
                        choices=GAN_DATASETS)
    size: int = _opt(28, f"image side the generator makes, one of {', '.join(map(str, GAN_SIZES))}", lo=28, hi=64)
    channels: int = _opt(0, "image channels, 1 (grey) or 3 (RGB); 0: 1 for MNIST, 3 for the caller's images",
                         lo=0, hi=3)
    latent: int = _opt(100, "length of the noise vector z", lo=2, hi=512)
    batch: int = _opt(64, "images per training step", lo=2, hi=1024)
    width: int = _opt(512, "channels of the generator's 4x4 projection, halved at each upsampling; the "
                           "discriminator starts at an eighth of it and doubles", lo=16, hi=1024)
    epochs: int = _opt(5, "passes over the data (ignored when --steps is set)", lo=1, hi=10_000)
    steps: int = _opt(0, "training steps in all (0: --epochs passes)", lo=0, hi=10_000_000)
    lr_g: float = _opt(1e-3, "Adam learning rate of the generator", lo=0.0, hi=1.0, lo_open=True)
    lr_d: float = _opt(1e-3, "Adam learning rate of the discriminator", lo=0.0, hi=1.0, lo_open=True)
    beta1: float = _opt(0.5, "Adam beta1 of both networks", lo=0.0, hi=1.0)
    beta2: float = _opt(0.99, "Adam beta2 of both networks", lo=0.0, hi=1.0)
    label_smoothing: float = _opt(0.1, "one-sided label smoothing: real images are labelled 1 minus this", lo=0.0,
                                  hi=0.5)
    g_steps: int = _opt(2, "generator updates per discriminator update", lo=1, hi=5)
    ema: float = _opt(0.99, "decay of the generator weights' moving average that is sampled and kept (0: the "
                           "weights themselves)", lo=0.0, hi=0.9999)
    dropout: float = _opt(0.0, "dropout after the generator's dense layer (the tutorial's 0.3 slows learning)", lo=0.0, hi=0.9)
    conditional: bool = _opt(False, "condition both networks on the digit label (mnist datasets only)")
    seed: int = _opt(0, "seed of the weights, the data order and the preview noise", lo=0, hi=2**63 - 1)
    progress_every: int = _opt(10, "a progress event every N steps", lo=1, hi=100_000)
    # 250, not FID's usual thousands: Inception v3 at 299 px takes about 70 ms a sample on 2 cores,
    # so 250 cost ~18 s an epoch, about what an epoch of `mnist` trains in (bench/bench_gan.py).
    fid_samples: int = _opt(250, "samples the FID at each epoch's end is computed from (0: no FID)", lo=0,
                            hi=10_000)
    preview: PreviewSettings = field(default=PreviewSettings(every=100, max_side=256, format="png"),
                                     metadata={"help": "preview frames: a 5x5 grid from fixed noise"})

    @property
    def image_channels(self) -> int:
        return self.channels or (3 if self.dataset == "images" else 1)


@dataclass(frozen=True)
class SampleSettings:
    """Sampling a generator: a grid of samples, or a latent walk (an animation)."""

    generator: str = _opt("", "generator name (see dreamctl models)", cli=False)
    count: int = _opt(25, "samples in the grid", lo=1, hi=256)
    columns: int = _opt(0, "grid columns (0: a square-ish grid)", lo=0, hi=256)
    seed: int = _opt(0, "seed of the noise", lo=0, hi=2**63 - 1)
    label: int = _opt(-1, "class of a conditional generator (-1: every sample a random class)", lo=-1, hi=1000)
    walk: int = _opt(0, "frames of a latent walk (slerp through --walk-keys seeds); 0: a grid", lo=0, hi=2000)
    walk_keys: int = _opt(4, "noise vectors a walk passes through, seed, seed+1, ... (it loops back)", lo=2, hi=64)
    cell_side: int = _opt(0, "side each sample is shown at (0: the generator's own)", lo=0, hi=1024)
    frame_ms: int = _opt(80, "milliseconds each walk frame shows", lo=10, hi=10_000)
    preview: PreviewSettings = field(default=PreviewSettings(every=1, max_side=256), metadata={"help": "preview frames"})


# A full-size style scale above this many pixels that follows coarser ones runs `large_iterations`.
LARGE_SCALE_PIXELS = 1024 * 1024


def long_side_floor(min_side: int, h: int, w: int) -> int:
    """The smallest long side at which an h x w image keeps `min_side` on its shorter side (a
    4000x40 image at long side 512 would be 5 px high, and VGG's pooling cannot take that)."""
    return math.ceil(min_side * max(h, w) / min(h, w))


def style_side(side: int, scale: float, hw: Sequence[int], min_side: int) -> int:
    """The long side a style image of size `hw` is used at, against a render (or candidate) of long
    side `side`: `side` times the style's scale, but never so small that the network cannot take it.
    The engine and the onnxruntime scorer both size styles with this, so their Grams agree."""
    return max(round(side * scale), long_side_floor(min_side, *hw))


def default_of(cls: type, name: str) -> Any:
    """The default of field `name` of dataclass `cls` (so other modules derive theirs from it)."""
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


def choices_of(cls: type, name: str) -> tuple[str, ...]:
    """The allowed values of choice field `name` of `cls`."""
    return next(f for f in dataclasses.fields(cls) if f.name == name).metadata["choices"]


def setting_fields(cls: type) -> list[dataclasses.Field]:
    """The scalar fields of a settings class that carry range/choice metadata."""
    return [f for f in dataclasses.fields(cls) if "lo" in f.metadata]


def _check_scalar(f: dataclasses.Field, value: Any, path: str) -> None:
    meta = f.metadata
    if meta.get("choices"):
        if value not in meta["choices"]:
            raise InvalidArgumentError(path, f"{quoted(value)} is not a valid value", meta["choices"])
        return
    if isinstance(value, bool) or meta.get("lo") is None:
        return
    lo, hi = meta["lo"], meta["hi"]
    bad = value < lo or value > hi or (meta.get("lo_open") and value <= lo) or value != value
    if bad:
        rng = f"{'>' if meta.get('lo_open') else '>='} {lo} and <= {hi}"
        raise InvalidArgumentError(path, f"{value} is out of range", rng)


ITEM_WEIGHTS = (1e-6, 1e6)  # the range of a term's, layer's, style's or preset's weight (or 0)


def validate(obj: Any, prefix: str = "") -> None:
    """Check every ranged/choice field of a settings object (recursing into nested settings)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            validate(value, f"{path}.")
        elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            for i, item in enumerate(value):
                _validate_item(item, f"{path}[{i}].")
        elif "lo" in f.metadata:
            _check_scalar(f, value, path)


def _validate_item(item: Any, prefix: str) -> None:
    for f in dataclasses.fields(item):
        value = getattr(item, f.name)
        if f.name == "weight" and not (value == 0 or ITEM_WEIGHTS[0] <= value <= ITEM_WEIGHTS[1]):
            # Beyond these, float32 arithmetic loses them: 1e308 overflows to inf, 1e-50 to 0 (#28 D8-D10).
            raise InvalidArgumentError(f"{prefix}weight", f"{value} is out of range",
                                       f"0, or {ITEM_WEIGHTS[0]:g} to {ITEM_WEIGHTS[1]:g}")
        if f.name == "scale" and not (0 < value <= 8):
            raise InvalidArgumentError(f"{prefix}scale", f"{value} is out of range", "> 0 and <= 8")
        if f.name == "channels" and any(c < 0 for c in value):
            raise InvalidArgumentError(f"{prefix}channels", "negative channel", ">= 0")
        if f.name == "strongest" and value and getattr(item, "channels", ()):
            raise InvalidArgumentError(f"{prefix}strongest", "given with channels", "channels or strongest, not both")

