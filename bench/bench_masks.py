"""Style masks (#27), measured in one run with real VGG16 weights, and the renders to look at.

    python bench/bench_masks.py [--size 512] [--iterations 60] [--large 2048] [--out bench_out/masks]
                                [--only regions cost cat]

1. Regions at --size px (one scale, L-BFGS, the default layers and weights):
   - Starry Night on the left half and The Great Wave on the right (a soft 4% seam): each half's
     style loss against its own style and against the other (guided Grams of the result inside the
     half, against each painting's whole-image Grams), and the factor other/own; the same for an
     unmasked render of both styles blended, for reference;
   - Starry Night on the left half only: the content loss inside the right half (content layers'
     squared feature difference, averaged over the half), beside an unmasked Starry Night render's;
   - the cost per iteration of the masked renders against the unmasked ones (whole renders), and
     then alternating 3 x 10 iterations of each (this host's speed drifts), for the halves, the
     cat/background mask below, and one style on one half.
2. chelsea with Starry Night on the cat and The Great Wave on the background (a mask drawn here, a
   polygon blurred by 6 px), at --size px, 2 scales; and a dream (Inception v3, defaults) masked
   to the background. Written to --out.
3. With --large N: the same cat/background render at N px (3 scales, tiled at the last), with the
   tile grid and the region border drawn on a copy, to look for seams and halos where they cross.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT.parent / "shared" / "images"
# The cat's outline in chelsea.png (451 x 300), drawn by eye: everything else is background.
CAT = [(30, 0), (398, 0), (372, 60), (362, 120), (352, 170), (332, 228), (304, 268), (286, 300), (0, 300),
       (0, 120), (18, 62)]


def _load(path: Path):
    from dreamrender.server.engine.imaging import to_tensor

    return to_tensor(Image.open(path).convert("RGB"))


def _halves(h: int, w: int, seam: float = 0.04) -> tuple[torch.Tensor, torch.Tensor]:
    ramp = ((torch.arange(w, dtype=torch.float32) / (w - 1) - 0.5 + seam / 2) / seam).clamp(0, 1)
    right = ramp.view(1, 1, 1, w).expand(1, 1, h, w).contiguous()
    return 1 - right, right


def cat_mask(size: tuple[int, int] = (451, 300)) -> torch.Tensor:
    """(1, 1, H, W): 1 on the cat, soft at its outline."""
    img = Image.new("L", (451, 300), 0)
    ImageDraw.Draw(img).polygon(CAT, fill=255)
    img = img.filter(ImageFilter.GaussianBlur(6)).resize(size, Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(img, np.float32) / 255)[None, None]


def render(net, content, styles, s, masks=(), label=""):
    """One whole render; (result (1, 3, H, W), seconds per iteration after the first two)."""
    from dreamrender.server.engine import Progress, render_style

    stamps: list[float] = []
    out = render_style(net, content, styles, settings=s, masks=masks,
                       on_event=lambda e: stamps.append(time.perf_counter()) if isinstance(e, Progress) else None)
    per = (stamps[-1] - stamps[2]) / (len(stamps) - 3)
    print(f"  {label}: {len(stamps)} iterations, {per:.3f} s/iteration", flush=True)
    return out, per


@torch.no_grad()
def region_style_loss(net, s, image, style, mask) -> float:
    """Sum over style layers (by weight) of |guided Gram of `image` in `mask` - Gram of `style`|^2."""
    from dreamrender.server.engine._regions import guided_gram, layer_mask
    from dreamrender.server.engine.style import gram

    layers = [x.layer for x in s.style_layers]
    fi, fs = net(image, layers), net(style, layers)
    return sum(x.weight * float((guided_gram(fi[x.layer].float(), layer_mask(mask, fi[x.layer].shape[-2:]))
                                 - gram(fs[x.layer].float())).pow(2).sum()) for x in s.style_layers)


@torch.no_grad()
def region_content_loss(net, s, image, content, mask) -> float:
    """Content layers' squared feature difference, averaged over `mask` (by weight)."""
    from dreamrender.server.engine._regions import layer_mask

    layers = [x.layer for x in s.content_layers]
    fi, fc = net(image, layers), net(content, layers)
    total = 0.0
    for x in s.content_layers:
        m = layer_mask(mask, fi[x.layer].shape[-2:])
        d = (fi[x.layer].float() - fc[x.layer].float()).pow(2) * m
        total += x.weight * float(d.sum() / (m.sum() * fi[x.layer].shape[1]))
    return total


def _save(x: torch.Tensor, path: Path) -> None:
    from dreamrender.server.engine.imaging import to_uint8

    Image.fromarray(to_uint8(x)).save(path)
    print(f"  wrote {path}", flush=True)


def regions(net, a: argparse.Namespace, out: Path) -> None:
    from dreamrender.server.engine.imaging import resize_long_side
    from dreamrender.settings import StyleImageSettings, StyleSettings

    content = resize_long_side(_load(IMAGES / "content" / "chelsea.png"), a.size)
    starry, wave = _load(IMAGES / "styles" / "starry_night.jpg"), _load(IMAGES / "styles" / "great_wave.jpg")
    two = (StyleImageSettings(), StyleImageSettings())
    s2 = StyleSettings(model="vgg16", size=a.size, scales=1, iterations=a.iterations, styles=two)
    s1 = StyleSettings(model="vgg16", size=a.size, scales=1, iterations=a.iterations, styles=(StyleImageSettings(),))
    left, right = _halves(*content.shape[-2:])
    print(f"\n== regions at {a.size} px, {a.iterations} L-BFGS iterations, vgg16", flush=True)
    blend, t_blend = render(net, content, [starry, wave], s2, label="unmasked, both styles blended")
    halves, t_halves = render(net, content, [starry, wave], s2, [left, right], "Starry left, Wave right")
    full, t_full = render(net, content, [starry], s1, label="unmasked, Starry Night")
    one, t_one = render(net, content, [starry], s1, [left], "Starry Night on the left half only")
    for name, img in (("blend", blend), ("halves", halves), ("starry_full", full), ("starry_left", one)):
        _save(img, out / f"regions_{name}.png")
    side = {k: resize_long_side(v, a.size) for k, v in (("starry", starry), ("wave", wave))}
    for label, img in (("masked halves", halves), ("unmasked blend", blend)):
        ls, lw = (region_style_loss(net, s2, img, side[k], left) for k in ("starry", "wave"))
        rw, rs = (region_style_loss(net, s2, img, side[k], right) for k in ("wave", "starry"))
        print(f"  {label}: left half vs Starry {ls:.3e}, vs Wave {lw:.3e} (other/own {lw / ls:.2f}x); "
              f"right half vs Wave {rw:.3e}, vs Starry {rs:.3e} (other/own {rs / rw:.2f}x)", flush=True)
    c_one, c_full = (region_content_loss(net, s1, img, content, right) for img in (one, full))
    print(f"  content loss in the unmasked right half: {c_one:.3f} masked render, {c_full:.3f} unmasked "
          f"({c_full / c_one:.1f}x more)", flush=True)
    print(f"  cost per iteration (these whole renders, one each): two regions {t_halves:.3f} vs blend {t_blend:.3f} s "
          f"({t_halves / t_blend:.2f}x); one region {t_one:.3f} vs unmasked {t_full:.3f} s "
          f"({t_one / t_full:.2f}x) (goal <= 1.15x)", flush=True)


def cost(net, a: argparse.Namespace) -> None:
    """Seconds per iteration, masked against unmasked, alternating 3 x 10 iterations of each."""
    from dreamrender.server.engine.imaging import resize_long_side
    from dreamrender.settings import StyleImageSettings, StyleSettings

    content = resize_long_side(_load(IMAGES / "content" / "chelsea.png"), a.size)
    starry, wave = _load(IMAGES / "styles" / "starry_night.jpg"), _load(IMAGES / "styles" / "great_wave.jpg")
    left, right = _halves(*content.shape[-2:])
    cat = cat_mask(tuple(content.shape[-2:][::-1]))
    two = StyleSettings(model="vgg16", size=a.size, scales=1, iterations=10,
                        styles=(StyleImageSettings(), StyleImageSettings()))
    one = StyleSettings(model="vgg16", size=a.size, scales=1, iterations=10, styles=(StyleImageSettings(),))
    print(f"\n== cost per iteration at {a.size} px, alternating 3 x 10 iterations", flush=True)
    cases = {"blend of two styles": (two, [starry, wave], ()), "two halves": (two, [starry, wave], [left, right]),
             "cat and background": (two, [starry, wave], [cat, 1 - cat]),
             "one style": (one, [starry], ()), "one style, left half": (one, [starry], [left])}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(3):
        for label, (s, styles, masks) in cases.items():
            times[label].append(render(net, content, styles, s, masks, label)[1])
    mean = {k: float(np.mean(v)) for k, v in times.items()}
    for masked, plain in (("two halves", "blend of two styles"), ("cat and background", "blend of two styles"),
                          ("one style, left half", "one style")):
        print(f"  {masked}: {mean[masked]:.3f} s/iteration against {plain}: {mean[plain]:.3f} "
              f"({mean[masked] / mean[plain]:.2f}x, goal <= 1.15x)", flush=True)


def cat_and_background(net, size: int, out: Path, scales: int, **extra) -> torch.Tensor:
    from dreamrender.server.engine.imaging import resize_long_side
    from dreamrender.settings import StyleImageSettings, StyleSettings

    content = _load(IMAGES / "content" / "chelsea.png")
    cat = cat_mask()
    s = StyleSettings(model="vgg16", size=size, scales=scales, styles=(StyleImageSettings(), StyleImageSettings()),
                      **extra)
    styles = [_load(IMAGES / "styles" / "starry_night.jpg"), _load(IMAGES / "styles" / "great_wave.jpg")]
    t = time.perf_counter()
    img, _ = render(net, resize_long_side(content, size), styles, s, [cat, 1 - cat], f"cat/background {size} px")
    print(f"  whole render {time.perf_counter() - t:.0f} s", flush=True)
    _save(img, out / f"chelsea_cat_starry_background_wave_{size}.png")
    Image.fromarray((cat[0, 0].numpy() * 255).astype(np.uint8)).save(out / "cat_mask.png")
    return img


def masked_dream(out: Path) -> None:
    from dreamrender.models import get_model, get_spec
    from dreamrender.server.engine import render_dream
    from dreamrender.settings import DreamSettings, DreamTerm

    content = _load(IMAGES / "content" / "chelsea.png")
    spec = get_spec("inception_v3")  # its default objective, as the server fills it in
    channels = tuple(spec.extra.get("default_dream_channels", ()))
    s = DreamSettings(model="inception_v3", terms=tuple(DreamTerm(layer, channels) for layer in spec.dream_layers))
    t = time.perf_counter()
    img = render_dream(get_model("inception_v3"), content, settings=s, mask=1 - cat_mask())
    print(f"\n== dream (inception_v3, defaults) masked to the background: {time.perf_counter() - t:.0f} s", flush=True)
    _save(img, out / "dream_background.png")


def large(net, size: int, out: Path) -> None:
    from dreamrender.server.engine._tiles import geometry, tile_spans
    from dreamrender.server.engine.sizing import style_tile
    from dreamrender.settings import StyleSettings

    print(f"\n== cat/background at {size} px, 3 scales, tiled at the last", flush=True)
    img = cat_and_background(net, size, out, 3, coarse_iterations=40, large_iterations=8)
    h, w = img.shape[-2:]
    s = StyleSettings(model="vgg16", size=size)
    tile = style_tile(s, (h, w))
    geo = geometry(net, s.layer_names)
    print(f"  {w}x{h}, tiles of {tile} px", flush=True)
    from dreamrender.server.engine.imaging import to_uint8

    marked = Image.fromarray(to_uint8(img))
    draw = ImageDraw.Draw(marked)
    for a_, _ in tile_spans(h, tile, geo.align)[1:]:
        draw.line([(0, a_), (w, a_)], fill=(255, 0, 255), width=1)
    for a_, _ in tile_spans(w, tile, geo.align)[1:]:
        draw.line([(a_, 0), (a_, h)], fill=(255, 0, 255), width=1)
    edge = np.asarray(cat_mask((w, h))[0, 0].numpy() * 255, np.uint8)
    border = np.asarray(Image.fromarray(edge).filter(ImageFilter.FIND_EDGES)) > 40
    marked_arr = np.asarray(marked).copy()
    marked_arr[border] = (0, 255, 0)
    Image.fromarray(marked_arr).save(out / f"chelsea_{size}_tiles_and_border.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--iterations", type=int, default=60)
    p.add_argument("--large", type=int, default=0, help="also the cat/background render at this size (tiled)")
    p.add_argument("--only", nargs="+", choices=("regions", "cost", "cat"), default=("regions", "cost", "cat"),
                   help="which parts to run (default all; --large adds its own)")
    p.add_argument("--out", default=str(ROOT / "bench_out" / "masks"))
    a = p.parse_args()
    from dreamrender.models import get_model

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = get_model("vgg16")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    if "regions" in a.only:
        regions(net, a, out)
    if "cost" in a.only:
        cost(net, a)
    if "cat" in a.only:
        print(f"\n== chelsea: Starry Night on the cat, The Great Wave on the background, {a.size} px", flush=True)
        cat_and_background(net, a.size, out, 2)
        masked_dream(out)
    if a.large:
        large(net, a.large, out)


if __name__ == "__main__":
    main()
