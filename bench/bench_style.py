"""Style-transfer benchmark: engine cost per iteration, time to quality, peak memory.

    python bench/bench_style.py [--model vgg16] [--sizes 256 512] [--iters 300] [--quick]

Prints, in one run:
  * the engine's seconds per iteration (L-BFGS and Adam) at each size next to the bare conv-stack
    forward+backward of the same network and size; their ratio is the engine's waste (L-BFGS is
    timed once its history is full, as in a long run);
  * time to quality: wall time of a single-scale L-BFGS run of --iters iterations at the largest
    size, and the wall time the multi-scale schedule needs to reach that run's final loss at the
    same size (same model, layers and term weights); their ratio;
  * peak RSS of each measurement (each runs in its own process).
Every child process gets dreamd's glibc heap settings (--malloc keep; `default` shows glibc's own),
and s/iter is the minimum of --repeats interleaved runs: this VM's speed drifts by +-5-10%.
Needs the model's weights in $DREAMRENDER_MODELS (dreamctl models pull vgg16).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from dreamrender.settings import StyleSettings

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "server" / "assets" / "chelsea.png"
STYLE = ROOT / "server" / "assets" / "starry_night.jpg"


def _load(size: int):
    import torch
    from PIL import Image

    from dreamrender.server.engine.imaging import resize_long_side, to_tensor

    torch.manual_seed(0)
    content = to_tensor(Image.open(CONTENT).convert("RGB"))
    style = to_tensor(Image.open(STYLE).convert("RGB"))
    return resize_long_side(content, size), style


class _Stop(Exception):
    pass


def measure_bare(model: str, size: int, iters: int, layer: str = "relu5_1") -> dict:
    """Forward to `layer` and backward to the image: the network's own cost (relu5_1: the
    deepest style layer, where the engine cuts; pool5: VGG's whole conv stack)."""
    import torch

    from dreamrender.models import get_model

    net = get_model(model)
    x = _load(size)[0].requires_grad_(True)
    for _ in range(2):  # warm-up
        torch.autograd.grad(net(x, [layer])[layer].sum(), x)
    t = time.perf_counter()
    for _ in range(iters):
        out = net(x, [layer])[layer]
        (g,) = torch.autograd.grad(out.sum(), x)
    return {"s_per_iter": (time.perf_counter() - t) / iters}


def _evaluator_sink(model: str, sink, s, content, style):
    """The server's checkpoint scorer (onnxruntime on its own thread), export built beforehand."""
    from dreamrender.models import ModelStore
    from dreamrender.server.evaluator import Evaluator

    ev = Evaluator(ModelStore(), threads=1)
    ev.scorer(model, s.layer_names)
    return ev.style_sink(sink, s, content.numpy(), [style.numpy()])


def measure_engine(model: str, size: int, iters: int, optimizer: str, scales: int = 1,
                   stop_at: float | None = None, every: int = 10, evaluator: bool = False,
                   coarse_iters: int = 0, skip: int = 3, history: int = 100) -> dict:
    """Run render_style; per-iteration time (mean after the first `skip`), final loss, wall time."""
    from dreamrender.models import get_model
    from dreamrender.server.engine.events import Progress
    from dreamrender.server.engine.style import render_style
    from dreamrender.settings import PreviewSettings, StyleSettings

    net = get_model(model)
    content, style = _load(size)
    stamps: list[tuple[int, float, float, int]] = []

    def on_event(e) -> None:
        if isinstance(e, Progress):
            stamps.append((e.step, time.perf_counter() - start, e.values["total"], e.stage_index))
            if stop_at is not None and e.stage_index == e.stage_count - 1 and e.values["total"] <= stop_at:
                raise _Stop

    s = StyleSettings(model=model, size=size, scales=scales, iterations=iters, optimizer=optimizer,
                      coarse_iterations=coarse_iters, lbfgs_history=history, preview=PreviewSettings(every=every))
    sink = _evaluator_sink(model, on_event, s, content, style) if evaluator else on_event
    start = time.perf_counter()
    try:
        render_style(net, content, [style], settings=s, on_event=sink)
        reached = stop_at is None
    except _Stop:
        reached = True
    wall = time.perf_counter() - start
    last = [t for t in stamps if t[3] == stamps[-1][3]]
    # The first iterations warm caches up; L-BFGS's cost grows until its history is full.
    steady = last[skip:]
    # The mean, not the median: checkpoint work lands on a few iterations and must count.
    per_iter = (steady[-1][1] - steady[0][1]) / (len(steady) - 1) if len(steady) > 1 else float("nan")
    return {"s_per_iter": per_iter, "wall": wall,
            "final_loss": min(t[2] for t in last), "iterations": stamps[-1][0], "reached": reached}


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"benchmark child failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run_child(ns: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(ns.threads)
    if ns.malloc == "keep":  # what dreamd does (server/_memory.py); the same for every measurement
        from dreamrender.server.memory import keep_heap

        keep_heap()
    kind = ns.child
    if kind == "bare":
        res = measure_bare(ns.model, ns.size, ns.iters, ns.layer)
    else:
        res = measure_engine(ns.model, ns.size, ns.iters, ns.optimizer, ns.scales,
                             ns.stop_at if ns.stop_at > 0 else None, every=ns.every, evaluator=ns.evaluator,
                             coarse_iters=ns.coarse_iters, skip=ns.skip, history=ns.lbfgs_history)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vgg16")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--iters", type=int, default=300, help="single-scale iterations for time to quality")
    p.add_argument("--per-iter-iters", type=int, default=20, help="iterations timed for s/iter")
    p.add_argument("--scales", type=int, default=3, help="scales of the multi-scale schedule")
    p.add_argument("--coarse-iters", type=int, default=100, help="iterations per coarse scale of the schedule")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lbfgs-history", type=int, default=StyleSettings.lbfgs_history,
                   help="L-BFGS history; its s/iter is timed once the history is full")
    p.add_argument("--repeats", type=int, default=3,
                   help="s/iter: each measurement runs this many times, interleaved; the minimum is shown")
    p.add_argument("--malloc", choices=("keep", "default"), default="keep",
                   help="glibc heap settings in every child: dreamd's (keep) or glibc's defaults")
    p.add_argument("--quick", action="store_true", help="skip time to quality")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=256, help=argparse.SUPPRESS)
    p.add_argument("--optimizer", default="lbfgs", help=argparse.SUPPRESS)
    p.add_argument("--stop-at", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--every", type=int, default=10, help=argparse.SUPPRESS)
    p.add_argument("--layer", default="relu5_1", help=argparse.SUPPRESS)
    p.add_argument("--skip", type=int, default=3, help=argparse.SUPPRESS)
    p.add_argument("--evaluator", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--checkpoints", action="store_true",
                   help="only measure the per-iteration cost of checkpoint scoring (every 10) at each size")
    ns = p.parse_args()
    if ns.child:
        return _run_child(ns)
    common = ["--model", ns.model, "--threads", str(ns.threads), "--malloc", ns.malloc,
              "--lbfgs-history", str(ns.lbfgs_history)]
    print(f"model {ns.model}, {ns.threads} torch threads")
    if ns.checkpoints:
        return _checkpoint_overhead(ns, common)
    print(f"glibc heap: {ns.malloc}; s/iter = min over {ns.repeats} interleaved runs of {ns.per_iter_iters} iterations"
          f" (L-BFGS: after its {ns.lbfgs_history}-pair history has filled)")
    print(f"{'size':>5} {'what':<16} {'s/iter':>8} {'vs cut':>8} {'vs full':>9} {'spread':>7} {'peak RSS MB':>12}")
    for size in ns.sizes:
        _per_iter_table(ns, size, common)
    if ns.quick:
        return
    size = max(ns.sizes)
    single = _child(["--child", "engine", "--size", str(size), "--iters", str(ns.iters), "--scales", "1", *common])
    print(f"\ntime to quality at {size} px (L-BFGS):")
    print(f"  single scale, {single['iterations']} iterations: loss {single['final_loss']:.4g} in "
          f"{single['wall']:.1f} s (peak RSS {single['peak_rss_mb']:.0f} MB)")
    multi = _child(["--child", "engine", "--size", str(size), "--iters", str(ns.iters), "--scales", str(ns.scales),
                    "--coarse-iters", str(ns.coarse_iters), "--stop-at", repr(single["final_loss"]), *common])
    verdict = "reached" if multi["reached"] else "did NOT reach"
    print(f"  {ns.scales} scales ({ns.coarse_iters} per coarse scale, <= {ns.iters} at full size): {verdict} it after "
          f"{multi['iterations']} iterations in {multi['wall']:.1f} s (peak RSS {multi['peak_rss_mb']:.0f} MB)")
    print(f"  ratio multi/single wall time: {multi['wall'] / single['wall']:.3f}")


def _per_iter_table(ns: argparse.Namespace, size: int, common: list[str]) -> None:
    """Bare forward+backward (cut at relu5_1 and the whole conv stack) and the engine's L-BFGS
    and Adam iterations, each run `repeats` times in turn so that drifts of the machine's speed
    hit all of them alike; the minimum is the least disturbed run."""
    n = str(ns.per_iter_iters)
    # Each L-BFGS iteration reads the whole history twice; timing it before the history is full
    # would understate a long run's cost (at 512 px, history 100: +29 ms per iteration).
    lbfgs = ["--iters", str(ns.per_iter_iters + ns.lbfgs_history), "--skip", str(ns.lbfgs_history)]
    runs = {"bare to relu5_1": ["--child", "bare", "--size", str(size), "--iters", n],
            "bare full stack": ["--child", "bare", "--size", str(size), "--iters", n, "--layer", "pool5"],
            "engine lbfgs": ["--child", "engine", "--size", str(size), *lbfgs, "--optimizer", "lbfgs",
                             "--scales", "1"],
            "engine adam": ["--child", "engine", "--size", str(size), "--iters", n, "--optimizer", "adam",
                            "--scales", "1"]}
    results: dict[str, list[dict]] = {k: [] for k in runs}
    for _ in range(ns.repeats):
        for what, args in runs.items():
            results[what].append(_child([*args, *common]))
    best = {k: min(v, key=lambda r: r["s_per_iter"]) for k, v in results.items()}
    cut, full = best["bare to relu5_1"]["s_per_iter"], best["bare full stack"]["s_per_iter"]
    for what, r in best.items():
        times = [x["s_per_iter"] for x in results[what]]
        spread = (max(times) - min(times)) / min(times)
        print(f"{size:>5} {what:<16} {r['s_per_iter']:>8.3f} {r['s_per_iter'] / cut:>8.3f} "
              f"{r['s_per_iter'] / full:>9.3f} {spread:>6.1%} {max(x['peak_rss_mb'] for x in results[what]):>12.0f}")


def _checkpoint_overhead(ns: argparse.Namespace, common: list[str]) -> None:
    """s/iter of L-BFGS without checkpoints against checkpoints (frame + onnxruntime scores) every 10."""
    n = str(max(ns.per_iter_iters, 40))
    print(f"{'size':>5} {'checkpoints':<26} {'s/iter':>8} {'ratio':>7}")
    for size in ns.sizes:
        base = _child(["--child", "engine", "--size", str(size), "--iters", n, "--every", "0", *common])
        print(f"{size:>5} {'none':<26} {base['s_per_iter']:>8.3f} {1.0:>7.3f}")
        for label, extra in (("frames every 10", []), ("frames+scores every 10", ["--evaluator"])):
            r = _child(["--child", "engine", "--size", str(size), "--iters", n, "--every", "10", *extra, *common])
            print(f"{size:>5} {label:<26} {r['s_per_iter']:>8.3f} {r['s_per_iter'] / base['s_per_iter']:>7.3f}")


if __name__ == "__main__":
    main()
