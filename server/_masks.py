"""Masks (#27): grey images that say where a render acts, checked and brought to its size."""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from dreamrender.errors import InvalidArgumentError

from .engine.imaging import resize_to

__all__ = ["check_mask_aspect", "mask_tensor", "read_mask", "ASPECT_TOLERANCE"]

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
