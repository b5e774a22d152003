"""dreamctl dream's objective flags: several weighted layers, channels or the strongest K of a
layer, a guide image, and the output format of zoom animations."""
from __future__ import annotations

import argparse
from pathlib import Path

from dreamrender.settings import DreamTerm

__all__ = ["DREAM_EXAMPLES", "add_objective_flags", "dream_terms", "animation_format"]

DREAM_EXAMPLES = """examples:
  dreamctl dream cat.jpg -o out.png                                       # the model's dream layer
  dreamctl dream cat.jpg --layer relu4_3:1 --layer relu3_3:0.5 -o out.png # two weighted layers
  dreamctl dream cat.jpg --layer relu4_3 --channels relu4_3=12,40 --strongest relu3_3=8 -o out.png
  dreamctl dream cat.jpg --guide flowers.jpg -o out.png                   # grow the guide's features
  dreamctl dream cat.jpg --mask background.png --mask-invert -o out.png   # dream only where the mask is dark
  dreamctl dream cat.jpg --gradient-norm laplacian --lap-levels 4 -o out.png   # smoother, larger shapes
  dreamctl dream cat.jpg --zoom-frames 60 --zoom 1.05 --rotate 0.5 -o zoom.webp   # an animation (.gif too)
"""


def add_objective_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layer", dest="layers", action="append", default=[], metavar="NAME[:W]",
                   help="a layer to amplify, with an optional weight (repeatable; default: the model's dream layer)")
    p.add_argument("--channels", action="append", default=[], metavar="LAYER=C1,C2",
                   help="only these channels of a layer (repeatable)")
    p.add_argument("--channel", type=int, action="append", default=[],
                   help="a channel of the one --layer (repeatable; older form of --channels)")
    p.add_argument("--strongest", action="append", default=[], metavar="LAYER=K",
                   help="the K channels of a layer that respond most to the input (repeatable; the channels "
                        "chosen are printed)")
    p.add_argument("--guide", metavar="IMAGE", help="a guided dream: grow the features of this image")
    p.add_argument("--mask", metavar="IMAGE", help="dream only where this image is light (grey levels, soft edges "
                                                   "kept; the input's aspect); --mask-invert for where it is dark")


def _pair(text: str, flag: str) -> tuple[str, str]:
    layer, sep, value = text.partition("=")
    if not sep or not layer or not value:
        raise SystemExit(f"dreamctl: {flag} takes LAYER=VALUE, not {text!r}")
    return layer, value


def dream_terms(args: argparse.Namespace) -> list[DreamTerm]:
    """The objective's terms from --layer, --channels, --strongest (and the older --channel)."""
    order: dict[str, float] = {}
    for text in args.layers:
        name, sep, weight = text.partition(":")
        try:
            order[name] = float(weight) if sep else 1.0
        except ValueError:
            raise SystemExit(f"dreamctl: --layer takes NAME or NAME:WEIGHT, not {text!r}") from None
    channels: dict[str, tuple[int, ...]] = {}
    for text in args.channels:
        layer, value = _pair(text, "--channels")
        try:
            channels[layer] = tuple(int(c) for c in value.split(","))
        except ValueError:
            raise SystemExit(f"dreamctl: --channels takes LAYER=C1,C2,..., not {text!r}") from None
    if args.channel:
        if len(order) != 1:
            raise SystemExit("dreamctl: --channel goes with exactly one --layer (or use --channels LAYER=C1,C2)")
        channels.setdefault(next(iter(order)), tuple(args.channel))
    strongest: dict[str, int] = {}
    for text in args.strongest:
        layer, value = _pair(text, "--strongest")
        if not value.isdigit():
            raise SystemExit(f"dreamctl: --strongest takes LAYER=K, not {text!r}")
        strongest[layer] = int(value)
    for layer in [*channels, *strongest]:  # a layer named only by --channels or --strongest is a term too
        order.setdefault(layer, 1.0)
    return [DreamTerm(name, channels.get(name, ()), weight, strongest.get(name, 0)) for name, weight in order.items()]


def animation_format(output: str | None) -> str | None:
    """A zoom animation's format from the output's suffix (.gif, else the server's webp)."""
    return "gif" if output and Path(output).suffix.lower() == ".gif" else None
