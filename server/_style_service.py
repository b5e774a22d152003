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
