"""The codec's PNG writer: standard PNGs that decode to the exact pixels, in stripes or not."""
from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from dreamrender.server.codec import encode_image


def _decoded(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    img.load()  # Pillow checks every chunk's CRC as it reads
    return np.asarray(img)


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 5, 3), (600, 700, 3), (513, 901, 4), (640, 480), (300, 200, 1)])
def test_png_round_trips_exactly(shape):
    rng = np.random.default_rng(sum(shape))
    # Smooth ramps plus noise: the Up filter's wrap-around (negative differences) is exercised.
    ramp = np.linspace(0, 255, shape[0], dtype=np.float64).reshape(-1, *([1] * (len(shape) - 1)))
    arr = ((ramp + rng.integers(0, 64, shape)) % 256).astype(np.uint8)
    data, media = encode_image(arr, "png")
    assert media == "image/png"
    back = _decoded(data)
    assert back.shape == (arr.shape[:2] if arr.ndim == 3 and arr.shape[2] == 1 else arr.shape)
    assert np.array_equal(back, arr.reshape(back.shape))


def test_striped_stream_is_one_valid_zlib_stream_with_the_right_checksum():
    arr = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)  # 3 MB: several stripes
    data, _ = encode_image(arr, "png")
    start = data.index(b"IDAT") + 4
    length = int.from_bytes(data[start - 8:start - 4], "big")
    raw = zlib.decompress(data[start:start + length])  # checks the Adler-32 combined from the stripes
    assert len(raw) == 1024 * (1024 * 3 + 1)
    assert np.array_equal(_decoded(data), arr)


def test_png_refuses_what_it_cannot_write():
    with pytest.raises(ValueError, match="uint8"):
        encode_image(np.zeros((4, 4, 3), np.float32), "png")
    with pytest.raises(ValueError, match="uint8"):
        encode_image(np.zeros((4, 4, 2), np.uint8), "png")


def test_flat_areas_still_compress():
    """Run-length deflate keeps what string matching gave flat images (a blank canvas, a mask)."""
    flat = np.full((1024, 1024, 3), 200, np.uint8)
    data, _ = encode_image(flat, "png")
    assert len(data) < 20_000  # 3 MB of pixels
    assert np.array_equal(_decoded(data), flat)
