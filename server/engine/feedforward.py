"""Feed-forward stylization on onnxruntime: a painting in one pass of a pretrained network.

Two networks (see the model catalog for where they come from):
- Magenta's arbitrary-style pair (Ghiasi et al. 2017): a predictor turns a style image (256x256,
  NHWC) into a 100-d style vector, and a transformer paints the content with it. The transformer
  was exported with a fixed 384x384 input, but its graph has no size-dependent constants (its
  reshapes are per-channel and its resizes are by scale), so the service gives it free height and
  width (`free_size_model`) and runs it at the output size: a 2048 px result keeps full detail and
  has no tile seams, because there are no tiles. Its instance-norm statistics are then those of the
  whole picture, as in training. Tested against the fixed export at 384x384: identical.
- Dumoulin et al.'s 26-style network (conditional instance norm): `style_weights` [26] blends its
  fixed styles.
Both downsample twice by 2, so inputs are reflect-padded to a multiple of 4 and the output cropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from dreamrender.errors import InvalidArgumentError
from dreamrender.settings import StyleSettings

from .events import Checkpoint, EventSink, Frame, Progress, RenderStats, Result
from ._regions import blend_regions
from .imaging import preview_array, resize_long_side, resize_to, to_uint8
from .runtime import CancelToken, WorkClock, check_cancel

__all__ = ["FeedForwardNets", "onnx_session", "free_size_model", "free_batch_model", "style_vector", "stylize_arbitrary",
           "stylize_presets", "feed_forward_image", "render_feed_forward", "STYLE_SIDE", "ARENA_KEEP_PIXELS"]

STYLE_SIDE = 256  # the predictor's input side (Magenta resizes style images to 256)
_MULTIPLE = 4
# onnxruntime's CPU arena keeps what a session's largest run needed for the session's life (three
# 2048 px presets left a server at 5.2 GB, #28 D25). Runs over this many pixels shrink the arena
# when they end, handing it back (the job's end then trims the heap): that costs the run about a
# third (2048 px, 26-style network: 1.25 s -> 1.7 s here), so smaller runs, whose arenas stay
# under ~200 MB and are reused by the next painting (a 512 px one takes 70 ms, not 95), keep theirs.
ARENA_KEEP_PIXELS = 250_000


def _run_options(pixels: int) -> Any:
    """RunOptions that shrink the CPU arena after a run of `pixels` over ARENA_KEEP_PIXELS, else None."""
    if pixels <= ARENA_KEEP_PIXELS:
        return None
    import onnxruntime as ort

    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def onnx_session(model: bytes, *, threads: int = 0) -> Any:
    """An onnxruntime session, on CUDA when onnxruntime-gpu can run there, else the CPU."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    available = ort.get_available_providers()
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    return ort.InferenceSession(model, opts, providers=providers)


def _free_dims(model: bytes, inputs: dict[int, str], outputs: dict[int, str]) -> bytes:
    """The same ONNX graph with the given dimensions of its first input and output named (left
    free). Shape annotations of intermediate values are dropped (onnxruntime infers them again)."""
    import onnx

    m = onnx.load_from_string(model)
    for value, names in ((m.graph.input[0], inputs), (m.graph.output[0], outputs)):
        dims = value.type.tensor_type.shape.dim
        for index, name in names.items():
            dims[index].dim_param = name
    del m.graph.value_info[:]
    return m.SerializeToString()


def free_size_model(model: bytes) -> bytes:
    """The same ONNX graph with its image input's and output's height and width left free (NHWC)."""
    return _free_dims(model, {1: "height", 2: "width"}, {1: "out_height", 2: "out_width"})


def free_batch_model(model: bytes) -> bytes:
    """The same ONNX graph with its first input's and output's batch dimension left free, so that
    several pictures can run at once (dynamic batching, #26). Only for graphs whose nodes do not
    assume one picture: the 26-style network batches exactly (tested), Magenta's transformer does
    not (a reshape to 1x32x1x1 inside)."""
    return _free_dims(model, {0: "batch"}, {0: "batch"})


@dataclass(frozen=True)
class FeedForwardNets:
    """onnxruntime sessions of the feed-forward networks that are loaded (None: not on this server)."""

    predict: Any = None
    transform: Any = None
    multistyle: Any = None

    @property
    def presets(self) -> int:
        """How many fixed styles the 26-style network blends: the length of its `style_weights` input."""
        return int(self.multistyle.get_inputs()[1].shape[0])

    @property
    def provider(self) -> str:
        session = self.transform or self.multistyle
        return "onnxruntime:" + (session.get_providers()[0] if session is not None else "none")


def _padded_run(run: Callable[[np.ndarray], np.ndarray], image: torch.Tensor) -> torch.Tensor:
    """`run` on the (1, 3, H, W) image reflect-padded to a multiple of 4, its output cropped back."""
    h, w = image.shape[-2:]
    ph, pw = -h % _MULTIPLE, -w % _MULTIPLE
    x = image.float()
    if ph or pw:
        mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode=mode)
    out = run(np.ascontiguousarray(x.cpu().numpy(), dtype=np.float32))
    return torch.from_numpy(np.ascontiguousarray(out[:, :, :h, :w])).clamp(0, 1)


def _nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def style_vector(nets: FeedForwardNets, image: torch.Tensor) -> np.ndarray:
    """The predictor's (1, 1, 1, 100) style vector of a (1, 3, H, W) image."""
    x = resize_to(image.float(), (STYLE_SIDE, STYLE_SIDE)).numpy()
    return nets.predict.run(None, {nets.predict.get_inputs()[0].name: _nhwc(x)})[0]


def stylize_arbitrary(nets: FeedForwardNets, content: torch.Tensor, styles: Sequence[torch.Tensor],
                      weights: Sequence[float], strength: float) -> torch.Tensor:
    """Paint `content` with the blend of `styles` (style vectors mixed by normalised weight).

    `strength` < 1 moves the style vector toward the content's own (Magenta's interpolation),
    which keeps more of the photo than fading the picture would.
    """
    total = float(sum(weights))
    vec = sum(w / total * style_vector(nets, s) for s, w in zip(styles, weights))
    if strength < 1:
        vec = strength * vec + (1 - strength) * style_vector(nets, content)
    inputs = nets.transform.get_inputs()

    def run(x: np.ndarray) -> np.ndarray:
        out = nets.transform.run(None, {inputs[0].name: _nhwc(x), inputs[1].name: vec.astype(np.float32)},
                                 _run_options(x.shape[-2] * x.shape[-1]))[0]
        return out.transpose(0, 3, 1, 2)

    return _padded_run(run, content)


def stylize_presets(nets: FeedForwardNets, content: torch.Tensor, presets: Sequence[tuple[int, float]],
                    strength: float) -> torch.Tensor:
    """Paint `content` with the 26-style network's presets blended by normalised weight; `strength`
    < 1 blends the painting with the photo (the network has no style vector to move)."""
    weights = np.zeros(nets.presets, np.float64)  # normalised in float64: tiny or huge weights survive it
    for index, w in presets:
        weights[index] += w
    weights = (weights / weights.sum()).astype(np.float32)
    names = [i.name for i in nets.multistyle.get_inputs()]
    out = _padded_run(lambda x: nets.multistyle.run(None, {names[0]: x, names[1]: weights},
                                                    _run_options(x.shape[-2] * x.shape[-1]))[0], content)
    return out if strength >= 1 else (strength * out + (1 - strength) * content.float()).clamp(0, 1)


def feed_forward_image(nets: FeedForwardNets, content: torch.Tensor, styles: Sequence[torch.Tensor],
                       s: StyleSettings, side: int, masks: Sequence[torch.Tensor | None] = ()) -> torch.Tensor:
    """The feed-forward painting at long side `side` (presets if the settings name any, else the styles).

    With `masks` (one per preset or style, (1, 1, H, W) of the content's aspect, or None for
    everywhere), each is painted alone and laid over its region through its soft mask; the photo
    stays where no mask reaches (one network run per region instead of one blended run); the
    weights blend only where masks overlap."""
    c = resize_long_side(content, side)
    if s.presets:
        if nets.multistyle is None:
            raise InvalidArgumentError("presets", "the 26-style network is not loaded", "style images")
        paint = [lambda p=p: stylize_presets(nets, c, [(p.index, 1.0)], s.strength) for p in s.presets]
        weights = [p.weight for p in s.presets]
        blended = lambda: stylize_presets(nets, c, [(p.index, p.weight) for p in s.presets], s.strength)  # noqa: E731
    else:
        if not styles:
            raise InvalidArgumentError("styles", "no style image and no preset", "style images or presets")
        weights = [x.weight for x in s.styles] or [1.0] * len(styles)
        paint = [lambda st=st: stylize_arbitrary(nets, c, [st], [1.0], s.strength) for st in styles]
        blended = lambda: stylize_arbitrary(nets, c, styles, weights, s.strength)  # noqa: E731
    if not any(m is not None for m in masks):
        return blended()
    fitted = [None if m is None else resize_to(m, tuple(c.shape[-2:])).clamp(0, 1) for m in masks]
    return blend_regions(c.float(), [run() for run in paint], fitted, weights)


def render_feed_forward(nets: FeedForwardNets, content: torch.Tensor, styles: Sequence[torch.Tensor], *,
                        settings: StyleSettings, on_event: EventSink | None = None,
                        cancel: CancelToken | None = None, masks: Sequence[torch.Tensor | None] = ()) -> torch.Tensor:
    """One feed-forward pass at `settings.size` (`masks` as for feed_forward_image): emits Progress,
    a Frame, a Checkpoint and the Result."""
    from .style import preserve_colors

    sink = on_event or (lambda _e: None)
    clock = WorkClock(1)
    check_cancel(cancel)
    out = feed_forward_image(nets, content, styles, settings, settings.size, masks)
    if settings.preserve_colors:
        out = preserve_colors(out, content)
    check_cancel(cancel)
    clock.add(1)
    values = {"strength": settings.strength}
    sink(Progress("feed_forward", 0, 1, 1, 1, values, clock.elapsed, 0.0))
    pixels = to_uint8(out)  # the frame shares the result's pixels when no smaller preview is asked for
    small = max(out.shape[-2:]) > settings.preview.max_side
    sink(Frame(preview_array(out, settings.preview.max_side) if small else pixels, 1, 0.0, "feed_forward", 0))
    sink(Checkpoint(out.numpy(), 1, 0))  # `out` is not changed after this: no copy needed
    model = "multistyle26" if settings.presets else "arbitrary"
    stats = RenderStats(out.shape[-1], out.shape[-2], 1, clock.elapsed, model, nets.provider, settings.seed, values)
    sink(Result(pixels, stats))
    return out
