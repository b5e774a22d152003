"""DeepDream benchmark: wall time and peak RSS of a large dream, tiled against untiled.

    python bench/bench_dream.py [--model vgg16] [--layer relu4_3] [--size 2048] [--tiles 512]
                                [--octaves 4] [--steps 10] [--save out.png] [--malloc keep default]

Each configuration runs in its own process so its peak RSS is its own. Tiling bounds memory by
the tile: the activations held at once are those of one tile, not of the whole image.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _child(ns: argparse.Namespace) -> None:
    import torch
    from PIL import Image

    from dreamrender.models import get_model
    from dreamrender.server.engine import render_dream
    from dreamrender.server.engine.imaging import resize_to, to_tensor, to_uint8
    from dreamrender.settings import DreamSettings, DreamTerm

    torch.set_num_threads(ns.threads)
    if ns.malloc[0] == "keep":  # what dreamd does (server/_memory.py)
        from dreamrender.server.memory import keep_heap

        keep_heap()
    net = get_model(ns.model)
    img = to_tensor(Image.open(ROOT / "server" / "assets" / "chelsea.png").convert("RGB"))
    img = resize_to(img, (ns.size, ns.size))
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s = DreamSettings(model=ns.model, terms=(DreamTerm(ns.layer),), octaves=ns.octaves, steps=ns.steps,
                      tile_size=ns.tile)
    t = time.perf_counter()
    out = render_dream(net, img, settings=s)
    wall = time.perf_counter() - t
    if ns.save:
        Image.fromarray(to_uint8(out)).save(ns.save)
    print(json.dumps({"wall": wall, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rss_before_render_mb": base_rss}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vgg16")
    p.add_argument("--layer", default="relu4_3")
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--tiles", type=int, nargs="+", default=[512])
    p.add_argument("--octaves", type=int, default=4)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save", default="")
    p.add_argument("--malloc", choices=("keep", "default"), nargs="+", default=["keep"],
                   help="glibc heap settings: dreamd's (keep) and/or glibc's defaults; each gets its own rows")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tile", type=int, default=512, help=argparse.SUPPRESS)
    ns = p.parse_args()
    if ns.child:
        return _child(ns)
    print(f"{ns.model} {ns.layer}, {ns.size}x{ns.size}, {ns.octaves} octaves x {ns.steps} steps, {ns.threads} threads")
    print(f"{'heap':>7} {'tile':>6} {'wall s':>8} {'peak RSS MB':>12} {'RSS before render MB':>21}")
    for heap in ns.malloc:
        for tile in ns.tiles:
            args = [sys.executable, __file__, "--child", "--tile", str(tile), "--model", ns.model, "--layer", ns.layer,
                    "--size", str(ns.size), "--octaves", str(ns.octaves), "--steps", str(ns.steps),
                    "--threads", str(ns.threads), "--malloc", heap] + (["--save", ns.save] if ns.save else [])
            r = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
            print(f"{heap:>7} {tile:>6} {r['wall']:>8.1f} {r['peak_rss_mb']:>12.0f} {r['rss_before_render_mb']:>21.0f}")


if __name__ == "__main__":
    main()
