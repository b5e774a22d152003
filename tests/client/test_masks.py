"""Masks from a label image (#27): order of first appearance, listed colours, and the counts refused."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dreamrender.client import style_request


def _labels(*colours: tuple[int, int, int], fmt: str = "PNG") -> bytes:
    """Vertical bands, one per colour, left to right."""
    a = np.zeros((12, 6 * len(colours), 3), np.uint8)
    for i, c in enumerate(colours):
        a[:, 6 * i: 6 * (i + 1)] = c
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, fmt, **({"quality": 70} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _mask(img) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(img.data)).convert("L")) > 127


def test_masks_in_order_of_first_appearance():
    req = style_request(b"c", [b"s1", b"s2"], mask_colors=_labels((0, 0, 255), (255, 0, 0)))
    first, second = _mask(req.styles[0].mask), _mask(req.styles[1].mask)
    assert first[:, :6].all() and not first[:, 6:].any()  # blue came first: the first style's
    assert second[:, 6:].all() and not second[:, :6].any()


def test_listed_colours_match_the_nearest_and_leave_the_rest_unmasked():
    labels = _labels((250, 5, 5), (0, 0, 0), (5, 5, 250), fmt="JPEG")  # JPEG'd: not exactly flat
    req = style_request(b"c", [b"s1", b"s2"], mask_colors=labels, label_colors=["#0000ff", "255,0,0"])
    blue, red = _mask(req.styles[0].mask), _mask(req.styles[1].mask)
    assert blue[:, 13:].all() and red[:, :5].all()
    assert not blue[:, 7:11].any() and not red[:, 7:11].any()  # black matches no listed colour: the photo stays


@pytest.mark.parametrize("kwargs, words", [
    (dict(mask_colors=_labels((0, 0, 255), (255, 0, 0), (0, 255, 0))), "3 colours in the label image for 2 styles"),
    (dict(mask_colors=_labels((0, 0, 255)), label_colors=["#0000ff"]), "1 listed colours for 2 styles"),
    (dict(masks=[b"m"] * 3), "masks: 3 masks for 2 styles"),
    (dict(mask_colors=_labels((0, 0, 255), (255, 0, 0)), label_colors=["#12345", "1,2,3"]), "'#12345'"),
])
def test_counts_and_colours_are_checked_before_any_call(kwargs, words):
    with pytest.raises(ValueError, match=words):
        style_request(b"c", [b"s1", b"s2"], **kwargs)
