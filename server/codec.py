"""Encoded images <-> pixels for the service: decoding with limits (errors name the request field),
and encoding of frames and results."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import warnings

import numpy as np
from PIL import Image

from dreamrender.errors import InvalidArgumentError, describe, quoted

from . import _animate
from ._png import encode_png

__all__ = ["decode_image", "probe_image", "encode_image", "MEDIA_TYPES", "AnimationWriter", "ANIMATION_TYPES"]

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}
_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "BMP": "image/bmp",
            "TIFF": "image/tiff", "GIF": "image/gif"}
_ALLOWED = "PNG, JPEG, WebP, BMP, TIFF or GIF bytes"


def probe_image(data: bytes, field: str, *, max_pixels: int, media_type: str = "") -> tuple[int, int]:
    """(width, height) from the header alone, after the checks `decode_image` makes first: cheap
    enough to run for every image of a request before any of them is decoded."""
    img = _open(data, field, max_pixels=max_pixels, media_type=media_type)
    return _oriented_size(img)


def _oriented_size(img: Image.Image) -> tuple[int, int]:
    w, h = img.size
    return (h, w) if _orientation(img) in (5, 6, 7, 8) else (w, h)  # EXIF orientations that swap the sides


# EXIF orientation -> the transpose that undoes it (as ImageOps.exif_transpose).
_UNDO_ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                     4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                     6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation known from the header, without decoding a pixel.

    A PNG's eXIf chunk may follow the pixel data, and PIL's getexif() then decodes the whole image
    to reach it: an 8000x8000 probe held the GIL for about 80 ms (health checks waited behind it).
    So a PNG's orientation counts only when its eXIf chunk comes before the pixels, as the PNG
    spec recommends; probe and decode use this same rule, so their sizes always agree."""
    if img.format == "PNG" and "exif" not in img.info:
        return 1
    try:
        value = img.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block: exif_transpose ignores it too
        return 1
    return value if value in _UNDO_ORIENTATION else 1


def _open(data: bytes, field: str, *, max_pixels: int, media_type: str) -> Image.Image:
    """The lazily opened image, its header checked: size, pixel limit, format, media type."""
    if not data:
        raise InvalidArgumentError(field, "image is empty", _ALLOWED)
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:  # PIL's own header check, past twice its limit
        raise InvalidArgumentError(field, f"image is over the server's pixel limit ({exc})",
                                   f"at most {max_pixels} pixels") from None
    except Exception as exc:  # PIL raises many types for bad or truncated bytes
        raise InvalidArgumentError(field, f"cannot decode image ({describe(exc)})", _ALLOWED) from None
    w, h = img.size
    if w == 0 or h == 0:
        raise InvalidArgumentError(field, "image has zero size", "at least 1x1 pixels")
    if w * h > max_pixels:
        raise InvalidArgumentError(field, f"image is {w}x{h}, over the server's pixel limit",
                                   f"at most {max_pixels} pixels")
    actual = _FORMATS.get(img.format or "")
    if actual is None:
        raise InvalidArgumentError(field, f"unsupported image format {img.format}", _ALLOWED)
    if img.format == "PNG" and not _png_data_can_fill(data, w, h):
        raise InvalidArgumentError(field, f"truncated PNG: its pixel data cannot hold a {w}x{h} image",
                                   "a whole PNG file")
    if media_type and media_type.lower() not in (actual, "image/jpg" if actual == "image/jpeg" else actual):
        raise InvalidArgumentError(f"{field}.media_type", f"says {quoted(media_type)} but the bytes are {actual}",
                                   f"{actual} or empty (detect)")
    return img


_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
_DEFLATE_MAX_RATIO = 1032  # deflate never expands its input more than this (a 258-byte match per 2 bits)


def _png_data_can_fill(data: bytes, w: int, h: int) -> bool:
    """Whether a PNG's IDAT chunks hold enough deflate data for its header's size (#28 D27).

    Pillow fills the rows of a zlib stream that ends early with zeros and reports no error, so a
    1.2 KB file claiming 8000x8000 decoded into 190 MB. Deflate cannot expand more than 1032:1, so
    fewer compressed bytes than the rows need / 1032 cannot be a whole image; this costs a walk
    over the chunk headers, not a decode."""
    try:
        depth, colour = data[24], data[25]
        pos, compressed = 8, 0
        while pos + 8 <= len(data):
            length, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
            if kind == b"IDAT":
                compressed += length
            elif kind == b"IEND":
                break
            pos += 12 + length
    except IndexError:
        return False
    row = 1 + (w * depth * _CHANNELS.get(colour, 4) + 7) // 8
    return h * row <= _DEFLATE_MAX_RATIO * compressed + 64


def decode_image(data: bytes, field: str, *, max_pixels: int, media_type: str = "",
                 min_long_side: int = 0) -> Image.Image:
    """Decode to 8-bit RGB.

    EXIF orientation is honoured; the pixel count is checked from the header, before any pixel
    is decoded (decompression bombs); a media type that contradicts the bytes is refused; of an
    animated image the first frame is used; 16-bit, CMYK, palette and alpha images are converted
    (alpha composited on white).

    With `min_long_side`, an image larger than the render needs comes out smaller, but never
    with its longer side under `min_long_side`: JPEG decodes at 1/2, 1/4 or 1/8 scale in the
    decoder itself (draft mode), and any image then shrinks by an integer box filter (`reduce`)
    before it is converted, so the float copies downstream are of the size needed, not of the
    upload. The final, antialiased resize to the exact size stays with the caller.
    """
    img = _open(data, field, max_pixels=max_pixels, media_type=media_type)
    try:
        img.seek(0)
        orientation = _orientation(img)
        if min_long_side and img.format == "JPEG":
            w, h = img.size
            k = max(w, h) / min_long_side
            if k >= 2:
                img.draft("RGB", (int(w / k) + 1, int(h / k) + 1))  # picks the smallest scale still >= this
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
        if orientation != 1:
            img = img.transpose(_UNDO_ORIENTATION[orientation])
    except Image.DecompressionBombError as exc:  # PIL's own header check fired before ours
        raise InvalidArgumentError(field, f"image is over the server's pixel limit ({exc})",
                                   f"at most {max_pixels} pixels") from None
    except Exception as exc:  # PIL raises many types for bad or truncated bytes
        raise InvalidArgumentError(field, f"cannot decode image ({describe(exc)})", _ALLOWED) from None
    img = _to_rgb(img)
    factor = max(img.size) // min_long_side if min_long_side else 1
    return img.reduce(factor) if factor >= 2 else img


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit int) grey: scale the full range down, not clip it
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() <= 65535 else float(arr.max())
        return Image.fromarray((arr / top * 255).round().clip(0, 255).astype(np.uint8)).convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        return Image.fromarray((arr.clip(0, 1) * 255).round().astype(np.uint8)).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa") or (img.mode == "P" and "transparency" in img.info):
        # Composite transparency on white rather than dropping alpha (black fringes otherwise).
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return img.convert("RGB")



def encode_image(arr: np.ndarray, fmt: str, *, quality: int = 90) -> tuple[bytes, str]:
    if fmt != "jpeg":
        # Parallel stripes of zlib's run-length deflate (_png): a 512 px painting in 5.5-6.7 ms and
        # 388 KB, against Pillow's 17-21 ms and 386 KB at level 1; at a short job's scale Pillow's
        # encode was a fifth of the whole request.
        return encode_png(arr), MEDIA_TYPES["png"]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue(), MEDIA_TYPES[fmt]


ANIMATION_TYPES = {"webp": "image/webp", "gif": "image/gif"}


class AnimationWriter:
    """A zoom animation, one frame at a time. Each frame is PNG-compressed into a temporary file
    (not memory: a server's RSS stays flat whatever the frame count), and `finish` has an encoder
    process write the animated WebP or GIF from it, decoding one frame at a time."""

    def __init__(self, fmt: str, frame_ms: int) -> None:
        if fmt not in ANIMATION_TYPES:
            raise ValueError(f"animations are {' or '.join(ANIMATION_TYPES)}, not {fmt!r}")
        self.fmt, self.frame_ms = fmt, frame_ms
        self._spool = tempfile.TemporaryFile()  # gone when closed or collected (a cancelled job)
        self._spans: list[tuple[int, int]] = []

    def add(self, frame: np.ndarray) -> None:
        data = encode_png(frame)
        self._spool.seek(0, io.SEEK_END)
        self._spans.append((self._spool.tell(), len(data)))
        self._spool.write(data)

    def finish(self) -> tuple[bytes, str]:
        """The animation's bytes and media type (the writer is spent). Written by an encoder
        process of its own (`_animate`): in dreamd's process Pillow's writers starved the event
        loop of the GIL, and health checks waited 53-232 ms (#28, D21)."""
        if not self._spans:
            raise ValueError("an animation needs at least one frame")
        # The animation comes back in a file, read in a few calls without the GIL; from a pipe,
        # 21 MB would take ~650 reads of 32 KiB, each wanting the GIL back.
        with tempfile.TemporaryFile() as out:
            try:
                self._spool.flush()
                fds = (self._spool.fileno(), out.fileno())
                proc = subprocess.run([sys.executable, "-I", _animate.__file__, *map(str, fds), self.fmt,
                                       str(self.frame_ms)], input=json.dumps(self._spans).encode(),
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=fds)
            finally:
                self._spool.close()
                self._spans = []
            if proc.returncode:
                lines = proc.stderr.decode(errors="replace").strip().splitlines() or [f"exit status {proc.returncode}"]
                raise RuntimeError(f"the {self.fmt} encoder failed: {lines[-1]}")
            out.seek(0)
            return out.read(), ANIMATION_TYPES[self.fmt]
