"""Which network paints by default: VGG16 against VGG19 (#24), measured in one run.

    python bench/bench_style_models.py [--models vgg16 vgg19] [--size 512] [--out bench_out] [--grid]

For each model, in its own process: the default Gatys render of chelsea in The Starry Night at
--size (3 scales of 100 L-BFGS iterations, dreamd's default precision) as a user runs it, with its
wall time, the seconds per iteration of its full-size scale and the process's peak RSS. Then every
render is scored by every model's onnxruntime evaluator (the common score: each network's own loss
favours its own render, so both are shown). --grid also paints 3 photos x 3 styles of
../shared/images at 256 px with each model (one scale, 100 iterations) into a sheet per model to
look at. Needs the models' weights in $DREAMRENDER_MODELS (dreamctl models pull vgg16 vgg19).
"""
from __future__ import annotations

import argparse
import functools
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "server" / "assets" / "chelsea.png"
STYLE = ROOT / "server" / "assets" / "starry_night.jpg"
SHARED = ROOT.parent / "shared" / "images"
GRID_PHOTOS = ("chelsea.png", "astronaut.png", "rocket.jpg")
GRID_STYLES = ("starry_night.jpg", "great_wave.jpg", "the_scream.jpg")


def _tensor(path: Path):
    from PIL import Image

    from dreamrender.server.engine.imaging import to_tensor

    return to_tensor(Image.open(path).convert("RGB"))


@functools.lru_cache(maxsize=None)
def _net(model: str):
    """The feature network, loaded once per process (the grid paints 9 images with each)."""
    from dreamrender.models import get_model

    return get_model(model)


def _render(model: str, content: Path, style: Path, out: Path, **settings) -> dict:
    """One render in this process: wall time, s/iter of the last scale, the image saved to `out`."""
    import torch
    from PIL import Image

    from dreamrender.server.engine import render_style
    from dreamrender.server.engine.events import Progress
    from dreamrender.server.engine.imaging import to_uint8
    from dreamrender.settings import StyleSettings

    torch.manual_seed(0)
    net = _net(model)
    stamps: list[tuple[int, int, float]] = []  # (scale, step, time)

    def sink(event) -> None:
        if isinstance(event, Progress):
            stamps.append((event.stage_index, event.step, time.perf_counter()))

    t0 = time.perf_counter()
    image = render_style(net, _tensor(content), [_tensor(style)], settings=StyleSettings(model=model, **settings),
                         on_event=sink)
    wall = time.perf_counter() - t0
    last = [s for s in stamps if s[0] == stamps[-1][0]]
    per_iter = (last[-1][2] - last[1][2]) / max(1, last[-1][1] - last[1][1])  # from its 2nd step: no warm-up
    Image.fromarray(to_uint8(image)).save(out)
    return {"wall": wall, "s_per_iter": per_iter, "steps": stamps[-1][1]}


def _child(ns: argparse.Namespace) -> None:
    result = _render(ns.child, CONTENT, STYLE, Path(ns.out) / f"{ns.child}_{ns.size}.png", size=ns.size)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _scores(models: list[str], renders: dict[str, Path]) -> dict[str, dict[str, dict[str, float]]]:
    """{evaluator model: {render's model: loss terms}}, each scored at the render's size."""
    from dreamrender.client.scoring import Scorer
    from dreamrender.models import export_onnx
    from dreamrender.settings import STYLE_CONTENT_LAYERS, STYLE_STYLE_LAYERS

    out: dict[str, dict[str, dict[str, float]]] = {}
    for judge in models:
        scorer = Scorer(export_onnx(judge, [*STYLE_CONTENT_LAYERS, *STYLE_STYLE_LAYERS]), threads=2)
        terms = scorer.style_terms(CONTENT, [STYLE], [renders[m] for m in models])
        out[judge] = dict(zip(models, terms))
    return out


def _grid(models: list[str], out: Path) -> None:
    from PIL import Image

    for model in models:
        tiles = []
        for photo in GRID_PHOTOS:
            for style in GRID_STYLES:
                path = out / f"grid_{model}_{Path(photo).stem}_{Path(style).stem}.png"
                _render(model, SHARED / "content" / photo, SHARED / "styles" / style, path, size=256, scales=1)
                tiles.append(Image.open(path).convert("RGB").resize((256, 192)))
        sheet = Image.new("RGB", (256 * 3, 192 * 3))
        for i, tile in enumerate(tiles):
            sheet.paste(tile, ((i % 3) * 256, (i // 3) * 192))
        sheet.save(out / f"grid_{model}.png")
        print(f"  {model}: {out / f'grid_{model}.png'} (rows {', '.join(GRID_PHOTOS)}; columns {', '.join(GRID_STYLES)})")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="+", default=["vgg16", "vgg19"])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--out", default="bench_out")
    p.add_argument("--grid", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    ns = p.parse_args()
    Path(ns.out).mkdir(parents=True, exist_ok=True)
    if ns.child:
        return _child(ns)
    results = {}
    for model in ns.models:
        proc = subprocess.run([sys.executable, __file__, "--child", model, "--size", str(ns.size), "--out", ns.out],
                              capture_output=True, text=True, check=True)
        results[model] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"default Gatys render at {ns.size} px (3 scales x 100 L-BFGS iterations), chelsea in The Starry Night")
    print(f"{'model':<8} {'wall s':>8} {'s/iter at full size':>20} {'peak RSS MB':>12}")
    base = results[ns.models[0]]
    for model, r in results.items():
        print(f"{model:<8} {r['wall']:>8.1f} {r['s_per_iter']:>14.3f} ({r['s_per_iter'] / base['s_per_iter']:.2f}x)"
              f" {r['peak_rss_mb']:>12.0f}")
    renders = {m: Path(ns.out) / f"{m}_{ns.size}.png" for m in ns.models}
    print("scores of each render (rows: the evaluator's network; lower is better):")
    for judge, row in _scores(ns.models, renders).items():
        cells = "  ".join(f"{m}: style {t['style']:.4g} content {t['content']:.4g} total {t['total']:.4g}"
                          for m, t in row.items())
        print(f"  by {judge}: {cells}")
    if ns.grid:
        print("3 photos x 3 styles at 256 px, one sheet per model:")
        _grid(ns.models, Path(ns.out))


if __name__ == "__main__":
    main()
