"""Request preparation for RenderStyle: settings, images and layers checked before queuing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from dreamrender.errors import InvalidArgumentError
from dreamrender.settings import StyleSettings
from dreamrender.v1 import dreamrender_pb2 as pb

from . import _proto
from .style import check_layers

if TYPE_CHECKING:
    from ._service import DreamRenderServicer

__all__ = ["StyleInputs", "prepare_style"]


@dataclass(frozen=True)
class StyleInputs:
    content: torch.Tensor
    styles: tuple[torch.Tensor, ...]
    init_image: torch.Tensor | None


def _content_and_styles(svc: "DreamRenderServicer", req, s: StyleSettings) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """The decoded content and style images of a RenderStyle or Evaluate request, checked."""
    if not req.HasField("content"):
        raise InvalidArgumentError("content", "no content image", "an encoded image")
    if not req.styles:
        raise InvalidArgumentError("styles", "no style image", "at least one style image")
    if sum(st.weight for st in s.styles) <= 0:
        raise InvalidArgumentError("styles[0].weight", "style weights sum to 0", "weights >= 0 with a positive sum")
    content = svc._image(req.content, "content")
    return content, tuple(svc._image(st.image, f"styles[{i}].image") for i, st in enumerate(req.styles))


def prepare_style(svc: "DreamRenderServicer", req: pb.RenderStyleRequest) -> tuple[StyleSettings, StyleInputs]:
    """Validate everything a style render needs; raises InvalidArgumentError naming the field."""
    s = _proto.style_settings(req, default_model=svc.default_style_model)
    spec = svc._available_spec(s.model)
    check_layers(spec.name, spec.layer_names, s)
    svc._check_side(s.size, "size")
    content, styles = _content_and_styles(svc, req, s)
    init = None
    if s.init == "image":
        if not req.HasField("init_image"):
            raise InvalidArgumentError("init_image", "init is IMAGE but no init_image given", "an encoded image")
        init = svc._image(req.init_image, "init_image")
    return s, StyleInputs(content, styles, init)


MAX_CANDIDATES = 32


def prepare_evaluate(svc: "DreamRenderServicer", req: pb.EvaluateRequest):
    """Validate an Evaluate request; returns (model, a function computing [(values, (h, w))])."""
    from ._evaluator import style_terms
    from ._proto import evaluate_settings

    s = evaluate_settings(req, default_model=svc.default_style_model)
    spec = svc._available_spec(s.model)
    if not spec.supports_style and not req.content_layers and not req.style_layers:
        raise InvalidArgumentError("model", f"{spec.name} lacks the default style layers",
                                   [x.name for x in _style_models()])
    check_layers(spec.name, spec.layer_names, s)
    if not req.candidates:
        raise InvalidArgumentError("candidates", "no candidate images", "1 to %d images" % MAX_CANDIDATES)
    if len(req.candidates) > MAX_CANDIDATES:
        raise InvalidArgumentError("candidates", f"{len(req.candidates)} candidates", f"at most {MAX_CANDIDATES}")
    content_t, styles_t = _content_and_styles(svc, req, s)
    content, styles = content_t.numpy(), [x.numpy() for x in styles_t]
    cands = []
    for i, c in enumerate(req.candidates):
        arr = svc._image(c, f"candidates[{i}]").numpy()
        if min(arr.shape[-2:]) < spec.min_side:
            raise InvalidArgumentError(f"candidates[{i}]", f"shorter side {min(arr.shape[-2:])} px is too small",
                                       f"at least {spec.min_side} px")
        svc._check_side(max(arr.shape[-2:]), f"candidates[{i}]")
        cands.append(arr)
    terms = style_terms(s)

    def run() -> list[tuple[dict[str, float], tuple[int, int]]]:
        scorer = svc.evaluator.scorer(s.model, list(terms.content_layers) + list(terms.style_layers))
        values = scorer.style_terms(content, styles, cands, style_weights=[x.weight for x in s.styles],
                                    style_scales=[x.scale for x in s.styles], terms=terms)
        return [(v, tuple(c.shape[-2:])) for v, c in zip(values, cands)]

    return s.model, run


def _style_models():
    from dreamrender.models import list_specs

    return [spec for spec in list_specs() if spec.supports_style]
