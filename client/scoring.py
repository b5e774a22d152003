"""Loss values of candidate images, computed with onnxruntime and numpy only (no torch).

The same formulas as the torch engines (server/engine/style.py, dream.py), on features from an
ONNX export of a catalog network (`dreamctl models export`, or the exports cached in the model
store). The server's evaluator and the torch-free client both use `Scorer`.

    scorer = Scorer("vgg16-relu.onnx")
    terms = scorer.style_terms(content, [style], [candidate1, candidate2])
    # -> [{"content": ..., "style": ..., "style/relu1_1": ..., "tv": ..., "total": ...}, ...]
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence, Union

import numpy as np
from PIL import Image

from dreamrender.errors import InvalidArgumentError
from dreamrender.settings import STYLE_CONTENT_LAYERS, STYLE_STYLE_LAYERS, StyleSettings, default_of, style_side

from ._pages import discard

__all__ = ["Scorer", "StyleTerms", "StyleTargets", "load_array", "gram", "tv_loss"]
ArrayInput = Union[str, os.PathLike, bytes, np.ndarray, Image.Image]


def load_array(image: ArrayInput) -> np.ndarray:
    """(1, 3, H, W) float32 RGB in [0, 1] from a path, encoded bytes, a PIL image or such an array."""
    if isinstance(image, np.ndarray):
        arr = image.astype(np.float32)
        return arr if arr.ndim == 4 else arr[None]
    if isinstance(image, (bytes, bytearray)):
        image = Image.open(io.BytesIO(image))
    elif not isinstance(image, Image.Image):
        image = Image.open(Path(image))
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])


def _resize(arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if arr.shape[-2:] == tuple(hw):
        return arr
    chans = [Image.fromarray(c).resize((hw[1], hw[0]), Image.BILINEAR) for c in arr[0]]  # float "F" mode
    return np.stack([np.asarray(c, dtype=np.float32) for c in chans])[None]


def _long_side(arr: np.ndarray, side: int) -> np.ndarray:
    h, w = arr.shape[-2:]
    s = side / max(h, w)
    return _resize(arr, (max(1, round(h * s)), max(1, round(w * s))))


_GRAM_CHUNK = 1 << 16  # positions per float64 block: the copy stays small at any image size


def gram(feat: np.ndarray) -> np.ndarray:
    """Gram matrix divided by C*H*W, in float64 (as the engine's, which is float32), summed over
    blocks of positions so that no float64 copy of a whole feature map is ever made (relu1_1 of
    a 1 Mpx image would be 540 MB)."""
    _, c, h, w = feat.shape
    f = feat.reshape(c, h * w)
    out = np.zeros((c, c))
    for start in range(0, h * w, _GRAM_CHUNK):
        block = f[:, start:start + _GRAM_CHUNK].astype(np.float64)
        out += block @ block.T
    return out / (c * h * w)


def tv_loss(image: np.ndarray) -> float:
    """Mean squared neighbour difference in 0-255 units, both directions (the engine's TV)."""
    x = image.astype(np.float64) * 255
    return float(((x[:, :, 1:, :] - x[:, :, :-1, :]) ** 2).mean() + ((x[:, :, :, 1:] - x[:, :, :, :-1]) ** 2).mean())


@dataclass(frozen=True)
class StyleTerms:
    """Term weights and layers of a style evaluation (the engine's defaults)."""

    content_layers: Mapping[str, float] = field(default_factory=lambda: {n: 1.0 for n in STYLE_CONTENT_LAYERS})
    style_layers: Mapping[str, float] = field(default_factory=lambda: {n: 1.0 for n in STYLE_STYLE_LAYERS})
    content_weight: float = default_of(StyleSettings, "content_weight")
    style_weight: float = default_of(StyleSettings, "style_weight")
    tv_weight: float = default_of(StyleSettings, "tv_weight")


@dataclass(frozen=True)
class StyleTargets:
    """What candidates of one size are compared against."""

    hw: tuple[int, int]
    content: Mapping[str, np.ndarray]
    grams: Mapping[str, np.ndarray]
    terms: StyleTerms


class Scorer:
    """Feature extraction with onnxruntime on an exported feature network, and the loss terms.

    `session_options` / `providers` pass through to onnxruntime; by default the CUDA provider is
    used when present, and `threads` caps intra-op threads (so it does not starve a torch worker).
    """

    def __init__(self, model_path: str | os.PathLike | bytes, *, threads: int = 0,
                 providers: Sequence[str] | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        # No busy-waiting between ops: on a machine shared with the torch loop, spinning threads
        # steal the cores the render needs.
        # Memory over speed: without the arena and memory patterns each run's activations are
        # freed when it ends (a server keeps the session for its lifetime); without the layout
        # optimisations (NCHWc) onnxruntime keeps no reordered second copy of the weights (VGG16:
        # session 39 MB instead of 110 MB, a 512 px pass 0.55 s instead of 0.46 s on one thread).
        opts.enable_cpu_mem_arena = False
        opts.enable_mem_pattern = False
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        available = ort.get_available_providers()
        providers = list(providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available])
        src = model_path if isinstance(model_path, bytes) else str(model_path)
        self.session = ort.InferenceSession(src, opts, providers=providers)
        self.layers = [o.name for o in self.session.get_outputs()]
        meta = self.session.get_modelmeta().custom_metadata_map
        self.model = meta.get("dreamrender.model", "")
        self.min_side = int(meta.get("dreamrender.min_side", "32"))

    def features(self, image: ArrayInput, layers: Sequence[str] | None = None, *,
                 field: str = "image") -> dict[str, np.ndarray]:
        """{layer: activation} for a (1, 3, H, W) RGB [0, 1] image (`field` names it in errors)."""
        names = list(layers or self.layers)
        self._check(names, "layers")
        arr = load_array(image)
        if min(arr.shape[-2:]) < self.min_side:
            raise InvalidArgumentError(field, f"shorter side {min(arr.shape[-2:])} px is too small",
                                       f"at least {self.min_side} px")
        outs = self.session.run(names, {self.session.get_inputs()[0].name: arr})
        return dict(zip(names, outs))

    def _check(self, names: Sequence[str], field_name: str) -> None:
        for i, name in enumerate(names):
            if name not in self.layers:
                raise InvalidArgumentError(f"{field_name}[{i}]", f"unknown layer {name!r} for {self.model or 'this export'}",
                                           self.layers)

    def style_targets(self, content: ArrayInput, styles: Sequence[ArrayInput], hw: tuple[int, int], *,
                      style_weights: Sequence[float] = (), style_scales: Sequence[float] = (),
                      terms: StyleTerms = StyleTerms()) -> "StyleTargets":
        """Content features and blended style Grams for candidates of size `hw` (computed once).

        Content features are taken at the candidate's size; each style image is resized to the
        candidate's longer side times its scale, and the Grams are blended by normalised weight,
        exactly as a render of that size does.
        """
        if not styles:
            raise InvalidArgumentError("styles", "no style images", "at least one image")
        self._check(list(terms.content_layers), "content_layers")
        self._check(list(terms.style_layers), "style_layers")
        weights = list(style_weights) or [1.0] * len(styles)
        if len(weights) != len(styles) or sum(weights) <= 0 or min(weights) < 0:
            raise InvalidArgumentError("style_weights", "need one weight >= 0 per style, with a positive sum",
                                       "non-negative weights, one per style")
        scales = list(style_scales) or [1.0] * len(styles)
        side, names = max(hw), list(terms.style_layers)
        grams: dict[str, np.ndarray] = {}
        for i, (style, w, sc) in enumerate(zip(styles, weights, scales)):
            arr = load_array(style)
            feats = self.features(_long_side(arr, style_side(side, sc, arr.shape[-2:], self.min_side)), names,
                                  field=f"styles[{i}].image")
            for name in names:
                g = gram(feats[name]) * (w / sum(weights))
                grams[name] = grams[name] + g if name in grams else g
            discard(*feats.values())
        content_feats = self.features(_resize(load_array(content), hw), list(terms.content_layers), field="content")
        return StyleTargets(tuple(hw), content_feats, grams, terms)

    def candidate_terms(self, candidate: ArrayInput, targets: "StyleTargets") -> dict[str, float]:
        """The loss terms of one candidate (of the targets' size) against `targets`."""
        cand, t = load_array(candidate), targets.terms
        if tuple(cand.shape[-2:]) != targets.hw:
            raise InvalidArgumentError("candidate", f"size {cand.shape[-2:]} differs from the targets'", str(targets.hw))
        feats = self.features(cand, list(dict.fromkeys(list(t.content_layers) + list(t.style_layers))), field="candidate")
        out: dict[str, float] = {}
        content_loss = sum(w * float(((feats[n].astype(np.float64) - targets.content[n]) ** 2).mean())
                           for n, w in t.content_layers.items())
        out["content"] = t.content_weight * content_loss
        for name, w in t.style_layers.items():
            out[f"style/{name}"] = t.style_weight * w * float(((gram(feats[name]) - targets.grams[name]) ** 2).sum())
        discard(*feats.values())
        out["style"] = sum(out[f"style/{name}"] for name in t.style_layers)
        out["tv"] = t.tv_weight * tv_loss(cand)
        out["total"] = out["content"] + out["style"] + out["tv"]
        return out

    def style_terms(self, content: ArrayInput, styles: Sequence[ArrayInput], candidates: Sequence[ArrayInput], *,
                    style_weights: Sequence[float] = (), style_scales: Sequence[float] = (),
                    terms: StyleTerms = StyleTerms(),
                    before_each: Callable[[int], None] | None = None) -> list[dict[str, float]]:
        """The style-transfer loss terms of each candidate, in order (targets shared by size).
        `before_each(i)` runs before candidate i is scored (a server stops a cancelled call there)."""
        if not candidates:
            raise InvalidArgumentError("candidates", "no candidate images", "at least one image")
        arrays = [load_array(c) for c in candidates]
        cache: dict[tuple[int, int], StyleTargets] = {}
        out = []
        for i, arr in enumerate(arrays):
            if before_each is not None:
                before_each(i)
            hw = tuple(arr.shape[-2:])
            if hw not in cache:
                cache[hw] = self.style_targets(content, styles, hw, style_weights=style_weights,  # type: ignore[arg-type]
                                               style_scales=style_scales, terms=terms)
            out.append(self.candidate_terms(arr, cache[hw]))  # type: ignore[index]
        return out

    def dream_score(self, image: ArrayInput, terms: Sequence[tuple[str, Sequence[int], float]], *,
                    objective: str = "mean_squared") -> float:
        """The DeepDream objective of an image: weighted mean (or mean squared) activation."""
        names = [layer for layer, _c, _w in terms]
        self._check(names, "terms")
        feats = self.features(image, list(dict.fromkeys(names)))
        score = 0.0
        for layer, channels, weight in terms:
            a = feats[layer].astype(np.float64)
            if channels:
                a = a[:, list(channels)]
            score += weight * float((a ** 2).mean() if objective == "mean_squared" else a.mean())
        return score

