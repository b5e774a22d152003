"""Masks (#27): grey images that say where a render acts, checked and brought to its size."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from dreamrender.errors import InvalidArgumentError

from .engine.imaging import resize_to

__all__ = ["check_mask_aspect", "mask_tensor", "read_mask", "probe_style_masks", "read_style_masks",
           "refuse_style_masks", "ASPECT_TOLERANCE"]

ASPECT_TOLERANCE = 0.01  # a mask this close to its image's aspect is resized; further off, refused
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as Pillow's convert("L")


def check_mask_aspect(mask_wh: tuple[int, int], image_wh: tuple[int, int], field: str) -> None:
    """InvalidArgumentError naming `field` when the mask's aspect differs from the image's by more than 1%."""
    (mw, mh), (iw, ih) = mask_wh, image_wh
    if abs((mw / mh) / (iw / ih) - 1.0) > ASPECT_TOLERANCE:
        raise InvalidArgumentError(field, f"a {mw}x{mh} mask for a {iw}x{ih} image: their aspects differ by more "
                                          "than 1%", "a mask of the image's aspect (within 1%; it is then resized)")


def mask_tensor(rgb: torch.Tensor, hw: tuple[int, int], field: str, *, invert: bool = False) -> torch.Tensor:
    """A decoded mask image ((1, 3, h, w) in [0, 1]) as grey levels (1, 1, *hw), soft edges kept.

    Refused, naming `field`, when nothing is left to act on (all black, or all white with `invert`)."""
    luma = torch.tensor(_LUMA, dtype=rgb.dtype).view(1, 3, 1, 1)
    grey = (rgb * luma).sum(1, keepdim=True)
    grey = resize_to(grey, tuple(hw)).clamp_(0, 1) if tuple(grey.shape[-2:]) != tuple(hw) else grey
    effective = 1.0 - grey if invert else grey
    if float(effective.max()) < 1.0 / 255:
        raise InvalidArgumentError(field, "the mask is all " + ("white (inverted: nothing to act on)" if invert
                                                               else "black (nothing to act on)"),
                                   "a mask with some non-zero pixels")
    return grey


def read_mask(decode: Callable[[int], torch.Tensor], mask_wh: tuple[int, int], hw: Sequence[int], field: str, *,
              invert: bool = False) -> torch.Tensor:
    """A request's mask for an image of size `hw`: its aspect checked (from the header's `mask_wh`),
    then `decode(long_side)` and made grey at `hw`."""
    check_mask_aspect(mask_wh, (hw[1], hw[0]), field)
    return mask_tensor(decode(max(hw)), tuple(hw), field, invert=invert)


@dataclass(frozen=True)
class _Wanted:
    image: Any  # the pb.Image
    field: str
    size: tuple[int, int]  # the mask's (width, height), from its header
    kind: str  # "mask" (over the content) or "source" (over style image `index`)
    index: int


def probe_style_masks(reader: Any, req: Any, content_wh: tuple[int, int],
                      style_whs: Sequence[tuple[int, int]]) -> list[_Wanted]:
    """A RenderStyle request's masks, every header checked (pixel limit, aspect against the image
    each covers) before anything decodes. `reader` probes and decodes request images."""
    wanted: list[_Wanted] = []
    for i, st in enumerate(req.styles):
        for kind, name, wh in (("mask", "mask", content_wh), ("source", "source_mask", style_whs[i])):
            if st.HasField(name):
                field = f"styles[{i}].{name}"
                size = reader.probe(getattr(st, name), field)
                check_mask_aspect(size, wh, field)
                wanted.append(_Wanted(getattr(st, name), field, size, kind, i))
    for i, p in enumerate(req.presets):
        if p.HasField("mask"):
            size = reader.probe(p.mask, f"presets[{i}].mask")
            check_mask_aspect(size, content_wh, f"presets[{i}].mask")
            wanted.append(_Wanted(p.mask, f"presets[{i}].mask", size, "mask", i))
    return wanted


def read_style_masks(reader: Any, wanted: Sequence[_Wanted], regions: int, content_hw: Sequence[int],
                     style_hws: Sequence[Sequence[int]]) -> tuple[tuple[torch.Tensor | None, ...], ...]:
    """(masks, source_masks) as the engines take them: one entry per style or preset (`regions`)
    and per style image, None where none was sent; empty tuples when none were."""
    masks: list[torch.Tensor | None] = [None] * regions
    sources: list[torch.Tensor | None] = [None] * len(style_hws)
    for w in wanted:
        hw = tuple(content_hw) if w.kind == "mask" else tuple(style_hws[w.index])
        grey = mask_tensor(reader.image(w.image, w.field, max(hw), size=w.size), hw, w.field)
        (masks if w.kind == "mask" else sources)[w.index] = grey
    return (tuple(masks) if any(m is not None for m in masks) else (),
            tuple(sources) if any(m is not None for m in sources) else ())


def refuse_style_masks(req: Any, names: Sequence[str], why: str, allowed: str) -> None:
    """InvalidArgumentError naming the first style's mask field in `names` that `req` sets."""
    for i, st in enumerate(req.styles):
        for name in names:
            if st.HasField(name):
                raise InvalidArgumentError(f"styles[{i}].{name}", why, f"{allowed}, or no {name.replace('_', ' ')}")
