"""L-BFGS history size vs progress (#17): the loss per iteration with fewer correction pairs.

    python bench/bench_lbfgs_history.py [--size 512] [--iters 300] [--pairs 100:float32 50:float16 ...]

One scale, VGG16, chelsea in Starry Night, content start, dreamd's default precision; each run in
its own process. Each run is PAIRS[:STORAGE] (the dtype the pairs are kept in; the engine's
LBFGS_STORAGE when left out). Prints the best loss so far at checkpoints and its ratio to the
first run's, and each run's history memory (2 image-sized vectors per pair).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from dreamrender.server.engine.sizing import LBFGS_STORAGE, STORAGE_BYTES

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "server" / "assets" / "chelsea.png"
STYLE = ROOT / "server" / "assets" / "starry_night.jpg"


def child(size: int, iters: int, pairs: int, storage: str, init: str) -> None:
    import torch
    from PIL import Image

    from dreamrender.server.engine import style as style_module

    style_module.LBFGS_STORAGE = storage
    style_module.lbfgs_pairs = lambda s, pixels: s.lbfgs_history  # as asked, past dreamd's memory budget
    from dreamrender.models import get_model
    from dreamrender.server.engine import render_style
    from dreamrender.server.engine.events import Progress
    from dreamrender.server.engine.imaging import to_tensor
    from dreamrender.settings import StyleImageSettings, StyleSettings

    torch.manual_seed(0)
    content = to_tensor(Image.open(CONTENT).convert("RGB"))
    style = to_tensor(Image.open(STYLE).convert("RGB"))
    losses: list[float] = []
    s = StyleSettings(model="vgg16", size=size, scales=1, iterations=iters, lbfgs_history=pairs, init=init,
                      styles=(StyleImageSettings(),))
    render_style(get_model("vgg16"), content, [style], settings=s,
                 on_event=lambda e: losses.append(e.values["total"]) if isinstance(e, Progress) else None)
    print(json.dumps(losses))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--pairs", nargs="*", default=["100:float32", "50:float32", "100:float16", "50:float16",
                                                   "25:float16", "10:float16"])
    p.add_argument("--init", default="content")
    p.add_argument("--child")
    a = p.parse_args()
    runs = {}
    for run in ([a.child] if a.child else a.pairs):
        pairs, _, storage = run.partition(":")
        storage = storage or LBFGS_STORAGE
        if a.child:
            child(a.size, a.iters, int(pairs), storage, a.init)
            return
        out = subprocess.run([sys.executable, __file__, "--size", str(a.size), "--iters", str(a.iters), "--init",
                              a.init, "--child", f"{pairs}:{storage}"], capture_output=True, text=True, check=True)
        runs[(int(pairs), storage)] = json.loads(out.stdout.strip().splitlines()[-1])
    first = next(iter(runs))
    ref = runs[first]
    marks = [m for m in (10, 25, 50, 100, 150, 200, 300, 500) if m <= a.iters]
    h, w = 341 * a.size // 512, a.size  # chelsea is 3:2
    print(f"{a.size} px, {a.iters} L-BFGS iterations; best loss (ratio to {first[0]} {first[1]} pairs) by iteration:")
    print("pairs  storage   history MB  " + "  ".join(f"{m:>16d}" for m in marks))
    for (pairs, storage), losses in runs.items():
        mb = pairs * 2 * 3 * h * w * STORAGE_BYTES[storage] / 2**20
        best = [min(losses[:m]) for m in marks]
        ratios = [b / min(ref[:m]) for b, m in zip(best, marks)]
        print(f"{pairs:5d}  {storage:8s}  {mb:10.0f}  " + "  ".join(f"{b:9.4g} ({r:.3f})" for b, r in zip(best, ratios)))


if __name__ == "__main__":
    main()
