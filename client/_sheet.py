"""`dreamctl presets PHOTO -o sheet.png`: every preset of the 26-style network on one photo, labelled."""
from __future__ import annotations

import argparse
import io
import math
import sys
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from dreamrender.v1 import dreamrender_pb2 as pb

from ._sdk import DreamClient, final_result

__all__ = ["add_sheet_parser", "render_sheet", "contact_sheet"]

_LABEL_PX = 22


def add_sheet_parser(sub: Any) -> None:
    p = sub.add_parser("presets", help="render every preset of the 26-style network on a photo, as one contact sheet")
    p.add_argument("photo", help="the photo to paint")
    p.add_argument("-o", "--output", required=True, help="where to write the sheet (PNG or JPEG)")
    p.add_argument("--tile", type=int, default=256, metavar="PX", help="longer side of each tile (default 256)")
    p.add_argument("--columns", type=int, default=7, help="tiles per row (default 7)")


def contact_sheet(photo: Image.Image, tiles: list[tuple[str, Image.Image]], columns: int) -> Image.Image:
    """The photo and `tiles` in a grid, each with its label underneath."""
    cells = [("photo", photo.convert("RGB"))] + tiles
    w = max(img.width for _l, img in cells)
    h = max(img.height for _l, img in cells) + _LABEL_PX
    rows = math.ceil(len(cells) / columns)
    sheet = Image.new("RGB", (columns * w, rows * h), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, (label, img) in enumerate(cells):
        x, y = (i % columns) * w, (i // columns) * h
        sheet.paste(img, (x + (w - img.width) // 2, y))
        draw.text((x + 6, y + h - _LABEL_PX + 4), label, fill="black", font=font)
    return sheet


def render_sheet(client: DreamClient, args: argparse.Namespace) -> int:
    """One feed-forward call per preset (each well under a second), then the sheet."""
    info = next((m for m in client.list_models(timeout=args.timeout or 30) if m.presets), None)
    if info is None:
        raise SystemExit("dreamctl: the server offers no presets (dreamctl models pull multistyle26 there)")
    photo = Image.open(args.photo)
    photo.thumbnail((args.tile, args.tile))
    tiles = []
    for preset in info.presets:
        result: pb.Result = final_result(client.render_style(args.photo, [], presets=[preset.index], size=args.tile,
                                                             timeout=args.timeout or 60))
        tiles.append((str(preset.index), Image.open(io.BytesIO(result.image.data))))
        if not args.quiet:
            print(f"preset {preset.index}: {result.stats.elapsed_seconds:.2f} s", file=sys.stderr)
    contact_sheet(photo, tiles, args.columns).save(Path(args.output))
    print(f"wrote {args.output} ({len(tiles)} presets on {args.photo})")
    return 0
