"""Request preparation for RenderStyle: settings, images and layers checked before queuing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from dreamrender.errors import InvalidArgumentError
from dreamrender.settings import StyleSettings
from dreamrender.v1 import dreamrender_pb2 as pb

from . import _proto

if TYPE_CHECKING:
    from ._service import DreamRenderServicer

__all__ = ["StyleInputs", "prepare_style"]


@dataclass(frozen=True)
class StyleInputs:
    content: torch.Tensor
    styles: tuple[torch.Tensor, ...]
    init_image: torch.Tensor | None


def _check_layers(spec, s: StyleSettings) -> None:
    names = spec.layer_names
    for field, items in (("content_layers", s.content_layers), ("style_layers", s.style_layers)):
        for i, item in enumerate(items):
            if item.layer not in names:
                raise InvalidArgumentError(f"{field}[{i}].layer", f"unknown layer {item.layer!r} of {spec.name}", names)


def prepare_style(svc: "DreamRenderServicer", req: pb.RenderStyleRequest) -> tuple[StyleSettings, StyleInputs]:
    """Validate everything a style render needs; raises InvalidArgumentError naming the field."""
    s = _proto.style_settings(req, default_model=svc.default_style_model)
    spec = svc._available_spec(s.model)
    _check_layers(spec, s)
    svc._check_side(s.size, "size")
    if not req.HasField("content"):
        raise InvalidArgumentError("content", "no content image", "an encoded image")
    if not req.styles:
        raise InvalidArgumentError("styles", "no style image", "at least one style image")
    content = svc._image(req.content, "content")
    styles = tuple(svc._image(st.image, f"styles[{i}].image") for i, st in enumerate(req.styles))
    if sum(st.weight for st in s.styles) <= 0:
        raise InvalidArgumentError("styles[0].weight", "style weights sum to 0", "weights >= 0 with a positive sum")
    init = None
    if s.init == "image":
        if not req.HasField("init_image"):
            raise InvalidArgumentError("init_image", "init is IMAGE but no init_image given", "an encoded image")
        init = svc._image(req.init_image, "init_image")
    return s, StyleInputs(content, styles, init)


MAX_CANDIDATES = 32


def prepare_evaluate(svc: "DreamRenderServicer", req: pb.EvaluateRequest):
    """Validate an Evaluate request; returns (model, a function computing [(values, (h, w))])."""
    from dreamrender.scoring import StyleTerms

    from ._proto import evaluate_settings

    s = evaluate_settings(req, default_model=svc.default_style_model)
    spec = svc._available_spec(s.model)
    if not spec.supports_style and not req.content_layers and not req.style_layers:
        raise InvalidArgumentError("model", f"{spec.name} lacks the default style layers",
                                   [x.name for x in _style_models()])
    _check_layers(spec, s)
    if not req.HasField("content"):
        raise InvalidArgumentError("content", "no content image", "an encoded image")
    if not req.styles:
        raise InvalidArgumentError("styles", "no style image", "at least one style image")
    if not req.candidates:
        raise InvalidArgumentError("candidates", "no candidate images", "1 to %d images" % MAX_CANDIDATES)
    if len(req.candidates) > MAX_CANDIDATES:
        raise InvalidArgumentError("candidates", f"{len(req.candidates)} candidates", f"at most {MAX_CANDIDATES}")
    if sum(st.weight for st in s.styles) <= 0:
        raise InvalidArgumentError("styles[0].weight", "style weights sum to 0", "weights >= 0 with a positive sum")
    content = svc._image(req.content, "content").numpy()
    styles = [svc._image(st.image, f"styles[{i}].image").numpy() for i, st in enumerate(req.styles)]
    cands = []
    for i, c in enumerate(req.candidates):
        arr = svc._image(c, f"candidates[{i}]").numpy()
        if min(arr.shape[-2:]) < spec.min_side:
            raise InvalidArgumentError(f"candidates[{i}]", f"shorter side {min(arr.shape[-2:])} px is too small",
                                       f"at least {spec.min_side} px")
        svc._check_side(max(arr.shape[-2:]), f"candidates[{i}]")
        cands.append(arr)
    terms = StyleTerms({x.layer: x.weight for x in s.content_layers}, {x.layer: x.weight for x in s.style_layers},
                       s.content_weight, s.style_weight, s.tv_weight)

    def run() -> list[tuple[dict[str, float], tuple[int, int]]]:
        scorer = svc.evaluator.scorer(s.model, list(terms.content_layers) + list(terms.style_layers))
        values = scorer.style_terms(content, styles, cands, style_weights=[x.weight for x in s.styles],
                                    style_scales=[x.scale for x in s.styles], terms=terms)
        return [(v, tuple(c.shape[-2:])) for v, c in zip(values, cands)]

    return s.model, run


def _style_models():
    from dreamrender.models import list_specs

    return [spec for spec in list_specs() if spec.supports_style]
