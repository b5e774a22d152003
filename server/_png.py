"""A PNG writer that deflates in parallel stripes (pigz's method), for the service's results and frames.

Pillow's PNG encoder deflates on one core: a 512 px painting took 20-26 ms there, a fifth of a
feed-forward request (#26). This writer makes the same standard PNG (8-bit grey, RGB or RGBA, one
zlib stream in one IDAT) in about a third of that time on two cores (5.5-6.7 ms against Pillow's
17-21 ms at level 1, the same session, for 512 px paintings and photos; sizes within 1% of Pillow's, or
smaller):

- every row uses PNG's "Up" filter, computed in numpy: one vectorised subtraction;
- deflate looks only for runs of one byte (zlib's Z_RLE strategy), not earlier strings: the Up
  residuals of photos and paintings hold few repeated strings, so the string search cost twice the
  time for nothing (a 512 px painting: 388 KB in 5 ms against 408 KB in 11 ms, one thread), while
  flat areas still shrink to almost nothing;
- the filtered rows are cut into stripes, each deflated by its own thread (zlib releases the GIL)
  as raw deflate ending in a full flush, so the stripes concatenate into one valid stream; the
  zlib header and the Adler-32 of the whole (combined from the stripes' own) wrap it.
"""
from __future__ import annotations

import os
import struct
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["encode_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type (grey, RGB, RGBA)
_MIN_STRIPE = 256 * 1024  # bytes of filtered rows; smaller images deflate in the calling thread
_ADLER_BASE = 65521
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _workers() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="png")
        return _pool


def _filtered(arr: np.ndarray) -> np.ndarray:
    """Rows of the image, each led by its filter byte: 0 (None) for the first, 2 (Up) for the rest."""
    h = arr.shape[0]
    flat = arr.reshape(h, -1)
    out = np.empty((h, flat.shape[1] + 1), np.uint8)
    out[:, 0] = 2
    out[0, 0] = 0
    out[0, 1:] = flat[0]
    np.subtract(flat[1:], flat[:-1], out=out[1:, 1:])  # uint8 wraps modulo 256, as the filter defines
    return out


def _adler_combine(first: int, second: int, second_len: int) -> int:
    """The Adler-32 of two byte strings joined, from each one's (zlib's adler32_combine)."""
    rem = second_len % _ADLER_BASE
    lo1, hi1, lo2, hi2 = first & 0xFFFF, first >> 16, second & 0xFFFF, second >> 16
    lo = (lo1 + lo2 - 1) % _ADLER_BASE
    hi = (rem * lo1 + hi1 + hi2 - rem) % _ADLER_BASE
    return (hi << 16) | lo


def _deflate(data: memoryview, level: int, last: bool) -> tuple[bytes, int]:
    co = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_RLE)
    body = co.compress(data) + co.flush(zlib.Z_FINISH if last else zlib.Z_FULL_FLUSH)
    return body, zlib.adler32(data)


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(tag)))


def encode_png(arr: np.ndarray, *, level: int = 1) -> bytes:
    """`arr` (H x W, or H x W x 1, 3 or 4; uint8) as PNG bytes, deflated at zlib `level`."""
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in _COLOUR_TYPES):
        raise ValueError(f"encode_png takes uint8 H x W [x 1|3|4] arrays, not {arr.dtype} {arr.shape}")
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    colour = _COLOUR_TYPES[arr.shape[2] if arr.ndim == 3 else 1]
    raw = _filtered(arr)
    stripes = max(1, min(_workers()._max_workers, raw.nbytes // _MIN_STRIPE))
    bounds = np.linspace(0, h, stripes + 1).astype(int)
    views = [memoryview(raw[a:b]).cast("B") for a, b in zip(bounds[:-1], bounds[1:])]
    if stripes == 1:
        parts = [_deflate(views[0], level, True)]
    else:
        parts = list(_workers().map(_deflate, views, [level] * stripes, [i == stripes - 1 for i in range(stripes)]))
    adler = parts[0][1]
    for (_, part_adler), view in zip(parts[1:], views[1:]):
        adler = _adler_combine(adler, part_adler, len(view))
    stream = b"\x78\x01" + b"".join(body for body, _ in parts) + struct.pack(">I", adler)
    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")
