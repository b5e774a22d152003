"""Masks from a labelled image (#27): one flat colour per region, as in Gatys et al. 2017's figures,
split into one grey mask per style so that nobody draws N masks by hand."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

__all__ = ["masks_from_colors", "parse_color"]

# A pixel within this RGB distance of a listed colour belongs to it: labels saved as JPEG or
# resized with smoothing still split cleanly; anything further from every listed colour is
# left unmasked (the content holds there).
_NEAREST = 48.0


def parse_color(text: str) -> tuple[int, int, int]:
    """'#rrggbb', 'rrggbb' or 'r,g,b' as an (r, g, b) triple; ValueError naming the text otherwise."""
    t = text.strip().lstrip("#")
    try:
        if "," in t:
            rgb = tuple(int(v) for v in t.split(","))
        elif len(t) == 6:
            rgb = tuple(int(t[i:i + 2], 16) for i in (0, 2, 4))
        else:
            raise ValueError
    except ValueError:
        raise ValueError(f"mask colour {text!r} is not '#rrggbb' or 'r,g,b'") from None
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise ValueError(f"mask colour {text!r} is not '#rrggbb' or 'r,g,b' with values 0-255")
    return rgb  # type: ignore[return-value]


def masks_from_colors(labels: bytes | str | Path, count: int, colors: Sequence[str] = ()) -> list[bytes]:
    """One PNG mask per style (`count` of them) from a label image: white where the pixel has that
    style's colour, black elsewhere. Colours are taken in order of first appearance (row by row),
    or from `colors`, matched to the nearest within a small distance. ValueError, naming both
    counts, when there are more colours than styles (or fewer)."""
    data = labels if isinstance(labels, bytes) else Path(labels).read_bytes()
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    flat = rgb.reshape(-1, 3)
    if colors:
        palette = np.array([parse_color(c) for c in colors], np.float32)
        _check_count(len(palette), count, "listed colours")
        dist = np.linalg.norm(flat[:, None, :].astype(np.float32) - palette[None], axis=2)
        label = np.where(dist.min(1) <= _NEAREST, dist.argmin(1), -1)
    else:
        keys = (flat[:, 0].astype(np.int32) << 16) | (flat[:, 1].astype(np.int32) << 8) | flat[:, 2]
        found, first, label = np.unique(keys, return_index=True, return_inverse=True)
        _check_count(len(found), count, "colours in the label image")
        order = np.argsort(np.argsort(first))  # rank of each colour by its first appearance
        label = order[label.reshape(-1)]
    out = []
    for i in range(count):
        mask = (label == i).reshape(rgb.shape[:2]).astype(np.uint8) * 255
        buf = io.BytesIO()
        Image.fromarray(mask, "L").save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def _check_count(colours: int, styles: int, what: str) -> None:
    if colours != styles:
        raise ValueError(f"mask_colors: {colours} {what} for {styles} styles (one colour per style"
                         f"{'; list the colours to use' if colours > styles else ''})")
