"""fp32 against bf16: seconds per iteration, the loss each reaches, and peak memory, in one run.

    python bench/bench_precision.py [--size 512] [--iters 300] [--optimizers lbfgs adam]
                                    [--dream-repeats 2] [--save DIR] [--quick]

Prints, measured side by side (fp32 and bf16 runs alternate, each in its own process so its peak
RSS is its own; this VM's speed drifts by 5-10%):
  * style at --size px, one scale, L-BFGS and Adam, --iters iterations: s/iter (mean after the
    first 3 iterations), and the loss curve: the best-loss image every 25 iterations, scored after
    the run by the evaluator (onnxruntime, fp32, the same VGG16 export the server scores with), so
    both precisions are judged by one fp32 referee; bf16/fp32 ratios of s/iter and final loss;
  * dream at --size px (long side), 4 octaves x 10 steps on VGG16's default layer: wall time and
    the objective of the result scored in fp32 by the evaluator;
  * peak RSS of every run.
Needs VGG16 in $DREAMRENDER_MODELS (dreamctl models pull vgg16). --save DIR writes the renders.
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
CONTENT = ROOT / "server" / "assets" / "chelsea.png"
STYLE = ROOT / "server" / "assets" / "starry_night.jpg"
EVERY = 25


def _images(size: int):
    from PIL import Image

    from dreamrender.server.engine.imaging import resize_long_side, to_tensor

    content = to_tensor(Image.open(CONTENT).convert("RGB"))
    return resize_long_side(content, size), to_tensor(Image.open(STYLE).convert("RGB"))


def _save(img, path: str) -> None:
    from PIL import Image

    if path:
        Image.fromarray(img).save(path)


def style_child(ns: argparse.Namespace) -> dict:
    """One style render; checkpoints kept in memory and scored after the clock stops."""
    from dreamrender.models import ModelStore, get_model
    from dreamrender.server.engine import Checkpoint, Progress, Result, render_style
    from dreamrender.server.evaluator import Evaluator, style_terms
    from dreamrender.settings import PreviewSettings, StyleSettings

    net = get_model("vgg16")
    content, style = _images(ns.size)
    s = StyleSettings(size=ns.size, scales=1, iterations=ns.iters, optimizer=ns.optimizer, precision=ns.precision,
                      preview=PreviewSettings(every=EVERY))
    stamps: list[float] = []
    checkpoints: dict[int, object] = {}
    result = []

    def on_event(e) -> None:
        if isinstance(e, Progress):
            stamps.append(time.perf_counter())
        elif isinstance(e, Checkpoint):
            checkpoints[e.step] = e.image
        elif isinstance(e, Result):
            result.append(e)

    start = time.perf_counter()
    render_style(net, content, [style], settings=s, on_event=on_event)
    wall = time.perf_counter() - start
    steady = stamps[3:]
    terms = style_terms(s)
    scorer = Evaluator(ModelStore()).scorer("vgg16", list(terms.content_layers) + list(terms.style_layers))
    targets = scorer.style_targets(content.numpy(), [style.numpy()], tuple(content.shape[-2:]), terms=terms)
    curve = {step: scorer.candidate_terms(img, targets)["total"] for step, img in sorted(checkpoints.items())}
    _save(result[0].image, ns.save)
    return {"s_per_iter": (steady[-1] - steady[0]) / (len(steady) - 1), "wall": wall, "curve": curve,
            "precision": result[0].stats.precision}


def dream_child(ns: argparse.Namespace) -> dict:
    """One 4 x 10 dream; its result's objective scored by the evaluator in fp32."""
    from dreamrender.models import ModelStore, get_model, get_spec
    from dreamrender.server.engine import Result, render_dream
    from dreamrender.server.evaluator import Evaluator
    from dreamrender.settings import DreamSettings, DreamTerm

    net = get_model("vgg16")
    layer = get_spec("vgg16").default_dream_layer
    content, _ = _images(ns.size)
    s = DreamSettings(terms=(DreamTerm(layer),), octaves=4, steps=10, precision=ns.precision)
    result = []
    start = time.perf_counter()
    out = render_dream(net, content, settings=s, on_event=lambda e: result.append(e) if isinstance(e, Result) else None)
    wall = time.perf_counter() - start
    scorer = Evaluator(ModelStore()).scorer("vgg16", [layer])
    score = scorer.dream_score(out.numpy(), [(layer, (), 1.0)], objective=s.objective)
    _save(result[0].image, ns.save)
    return {"wall": wall, "score": score, "precision": result[0].stats.precision}


def _run(kind: str, precision: str, ns: argparse.Namespace, optimizer: str = "", rep: int = 0) -> dict:
    save = str(Path(ns.save) / f"{kind}{optimizer}_{precision}_{rep}.png") if ns.save else ""
    args = [sys.executable, __file__, "--child", kind, "--precision", precision, "--size", str(ns.size),
            "--iters", str(ns.iters), "--optimizer", optimizer or "lbfgs", "--save", save]
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"benchmark child failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _style_table(ns: argparse.Namespace, optimizer: str) -> None:
    runs = {p: _run("style", p, ns, optimizer) for p in ("fp32", "bf16")}
    a, b = runs["fp32"], runs["bf16"]
    print(f"\nstyle {ns.size} px, {optimizer}, {ns.iters} iterations, one scale")
    print(f"{'precision':>9} {'s/iter':>8} {'wall s':>8} {'peak RSS MB':>12} {'final loss (fp32 referee)':>27}")
    for p, r in runs.items():
        final = r["curve"][max(r["curve"], key=int)]
        print(f"{p:>9} {r['s_per_iter']:>8.3f} {r['wall']:>8.1f} {r['peak_rss_mb']:>12.0f} {final:>27.6g}")
    fa, fb = (r["curve"][max(r["curve"], key=int)] for r in (a, b))
    print(f"bf16/fp32: s/iter {b['s_per_iter'] / a['s_per_iter']:.2f}x, final loss {fb / fa:.4f}x "
          f"({(fb / fa - 1) * 100:+.2f}%), peak RSS {b['peak_rss_mb'] / a['peak_rss_mb']:.2f}x")
    print(f"{'iteration':>9} {'fp32 loss':>12} {'bf16 loss':>12} {'bf16/fp32':>10}")
    for step in sorted(a["curve"], key=int):
        if step in b["curve"]:
            print(f"{step:>9} {a['curve'][step]:>12.6g} {b['curve'][step]:>12.6g} "
                  f"{b['curve'][step] / a['curve'][step]:>10.4f}")


def _dream_table(ns: argparse.Namespace) -> None:
    if ns.dream_repeats < 1:
        return
    print(f"\ndream {ns.size} px, vgg16 default layer, 4 octaves x 10 steps")
    print(f"{'run':>4} {'precision':>9} {'wall s':>8} {'peak RSS MB':>12} {'score (fp32 referee)':>21}")
    walls: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for rep in range(ns.dream_repeats):
        for p in ("fp32", "bf16"):
            r = _run("dream", p, ns, rep=rep)
            walls[p].append(r["wall"])
            print(f"{rep:>4} {p:>9} {r['wall']:>8.1f} {r['peak_rss_mb']:>12.0f} {r['score']:>21.6g}")
    print(f"bf16/fp32 wall (best of {ns.dream_repeats} each): {min(walls['bf16']) / min(walls['fp32']):.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--optimizers", nargs="+", default=["lbfgs", "adam"], choices=("lbfgs", "adam"))
    p.add_argument("--dream-repeats", type=int, default=2)
    p.add_argument("--save", default="", help="folder for the renders")
    p.add_argument("--quick", action="store_true", help="256 px, 30 iterations, one dream each: a smoke run")
    p.add_argument("--child", choices=("style", "dream"), help=argparse.SUPPRESS)
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    p.add_argument("--optimizer", default="lbfgs", help=argparse.SUPPRESS)
    ns = p.parse_args()
    if ns.child:
        res = style_child(ns) if ns.child == "style" else dream_child(ns)
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(res))
        return
    if ns.quick:
        ns.size, ns.iters, ns.dream_repeats = 256, 30, 1
    if ns.save:
        Path(ns.save).mkdir(parents=True, exist_ok=True)
    from dreamrender.server.engine import native_bf16
    import torch

    print(f"native bf16 on this CPU: {native_bf16(torch.device('cpu'))}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    for optimizer in ns.optimizers:
        _style_table(ns, optimizer)
    _dream_table(ns)


if __name__ == "__main__":
    main()
