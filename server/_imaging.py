"""Image helpers: bytes <-> tensors, resizing. Decoding errors name the request field."""
from __future__ import annotations

import io
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from dreamrender.errors import InvalidArgumentError

__all__ = ["decode_image", "encode_image", "to_tensor", "to_uint8", "resize_long_side", "resize_to",
           "preview_array", "MEDIA_TYPES"]

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}


def decode_image(data: bytes, field: str, *, max_pixels: int) -> Image.Image:
    """Decode to RGB, honouring EXIF orientation; refuse bombs before decoding the pixels."""
    if not data:
        raise InvalidArgumentError(field, "image is empty", "PNG, JPEG, WebP, BMP or TIFF bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise InvalidArgumentError(field, f"image is {w}x{h}, over the server's pixel limit",
                                           f"at most {max_pixels} pixels")
            img = ImageOps.exif_transpose(img)
            img.load()
    except InvalidArgumentError:
        raise
    except Exception as exc:  # PIL raises many types for bad bytes
        raise InvalidArgumentError(field, f"cannot decode image ({type(exc).__name__}: {exc})",
                                   "PNG, JPEG, WebP, BMP or TIFF bytes") from None
    if img.width == 0 or img.height == 0:
        raise InvalidArgumentError(field, "image has zero size", "at least 1x1")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite transparency on white rather than dropping alpha (black fringes otherwise).
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, rgba)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        img = Image.fromarray((arr / max(arr.max(), 1) * 255).astype(np.uint8))
    return img.convert("RGB")


def to_tensor(img: Image.Image) -> torch.Tensor:
    """(1, 3, H, W) float32 in [0, 1]."""
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0, 1] -> (H, W, 3) uint8."""
    arr = x.detach()[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(arr)


def encode_image(arr: np.ndarray, fmt: str, *, quality: int = 90) -> tuple[bytes, str]:
    buf = io.BytesIO()
    img = Image.fromarray(arr)
    if fmt == "jpeg":
        img.save(buf, format="JPEG", quality=quality)
    else:
        img.save(buf, format="PNG", compress_level=3)
    return buf.getvalue(), MEDIA_TYPES[fmt]


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize; antialiased when shrinking (plain bilinear aliases badly)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def resize_long_side(x: torch.Tensor, side: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    scale = side / max(h, w)
    return resize_to(x, (max(1, round(h * scale)), max(1, round(w * scale))))


def preview_array(x: torch.Tensor, max_side: int) -> np.ndarray:
    if max(x.shape[-2:]) > max_side:
        x = resize_long_side(x, max_side)
    return to_uint8(x)
