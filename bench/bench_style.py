"""Style-transfer benchmark: engine cost per iteration, time to quality, peak memory.

    python bench/bench_style.py [--model vgg16] [--sizes 256 512] [--iters 300] [--quick]

Prints, in one run:
  * the engine's seconds per iteration (L-BFGS and Adam) at each size next to the bare conv-stack
    forward+backward of the same network and size; their ratio is the engine's waste;
  * time to quality: wall time of a single-scale L-BFGS run of --iters iterations at the largest
    size, and the wall time the multi-scale schedule needs to reach that run's final loss at the
    same size (same model, layers and term weights); their ratio;
  * peak RSS of each measurement (each runs in its own process).
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

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "server" / "assets" / "chelsea.png"
STYLE = ROOT / "server" / "assets" / "starry_night.jpg"


def _load(size: int):
    import torch
    from PIL import Image

    from dreamrender.server._imaging import resize_long_side, to_tensor

    torch.manual_seed(0)
    content = to_tensor(Image.open(CONTENT).convert("RGB"))
    style = to_tensor(Image.open(STYLE).convert("RGB"))
    return resize_long_side(content, size), style


class _Stop(Exception):
    pass


def measure_bare(model: str, size: int, iters: int) -> dict:
    """Forward to the deepest style layer and backward to the image: the network's own cost."""
    import torch

    from dreamrender.models import get_model

    net = get_model(model)
    x = _load(size)[0].requires_grad_(True)
    times = []
    for _ in range(iters + 2):
        t = time.perf_counter()
        out = net(x, ["relu5_1"])["relu5_1"]
        (g,) = torch.autograd.grad(out.sum(), x)
        times.append(time.perf_counter() - t)
    return {"s_per_iter": sorted(times[2:])[len(times[2:]) // 2]}


def measure_engine(model: str, size: int, iters: int, optimizer: str, scales: int = 1,
                   stop_at: float | None = None, every: int = 10) -> dict:
    """Run render_style; per-iteration time (median of steady iterations), final loss, wall time."""
    from dreamrender.models import get_model
    from dreamrender.server.events import Progress
    from dreamrender.server.style import render_style
    from dreamrender.settings import PreviewSettings, StyleSettings

    net = get_model(model)
    content, style = _load(size)
    stamps: list[tuple[int, float, float, int]] = []
    start = time.perf_counter()

    def on_event(e) -> None:
        if isinstance(e, Progress):
            stamps.append((e.step, time.perf_counter() - start, e.values["total"], e.stage_index))
            if stop_at is not None and e.stage_index == e.stage_count - 1 and e.values["total"] <= stop_at:
                raise _Stop

    s = StyleSettings(model=model, size=size, scales=scales, iterations=iters, optimizer=optimizer,
                      preview=PreviewSettings(every=every))
    try:
        render_style(net, content, [style], settings=s, on_event=on_event)
        reached = stop_at is None
    except _Stop:
        reached = True
    wall = time.perf_counter() - start
    last = [t for t in stamps if t[3] == stamps[-1][3]]
    deltas = sorted(b[1] - a[1] for a, b in zip(last[3:], last[4:]))
    return {"s_per_iter": deltas[len(deltas) // 2] if deltas else float("nan"), "wall": wall,
            "final_loss": min(t[2] for t in last), "iterations": stamps[-1][0], "reached": reached}


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _run_child(ns: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(ns.threads)
    kind = ns.child
    if kind == "bare":
        res = measure_bare(ns.model, ns.size, ns.iters)
    else:
        res = measure_engine(ns.model, ns.size, ns.iters, ns.optimizer, ns.scales,
                             ns.stop_at if ns.stop_at > 0 else None)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vgg16")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--iters", type=int, default=300, help="single-scale iterations for time to quality")
    p.add_argument("--per-iter-iters", type=int, default=12, help="iterations timed for s/iter")
    p.add_argument("--scales", type=int, default=3, help="scales of the multi-scale schedule")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="skip time to quality")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=256, help=argparse.SUPPRESS)
    p.add_argument("--optimizer", default="lbfgs", help=argparse.SUPPRESS)
    p.add_argument("--stop-at", type=float, default=0.0, help=argparse.SUPPRESS)
    ns = p.parse_args()
    if ns.child:
        return _run_child(ns)
    common = ["--model", ns.model, "--threads", str(ns.threads)]
    print(f"model {ns.model}, {ns.threads} torch threads")
    print(f"{'size':>5} {'what':<14} {'s/iter':>8} {'vs bare':>8} {'peak RSS MB':>12}")
    for size in ns.sizes:
        n = str(ns.per_iter_iters)
        bare = _child(["--child", "bare", "--size", str(size), "--iters", n, *common])
        print(f"{size:>5} {'bare fwd+bwd':<14} {bare['s_per_iter']:>8.3f} {1.0:>8.3f} {bare['peak_rss_mb']:>12.0f}")
        for opt in ("lbfgs", "adam"):
            r = _child(["--child", "engine", "--size", str(size), "--iters", n, "--optimizer", opt,
                        "--scales", "1", *common])
            print(f"{size:>5} {'engine ' + opt:<14} {r['s_per_iter']:>8.3f} {r['s_per_iter'] / bare['s_per_iter']:>8.3f} "
                  f"{r['peak_rss_mb']:>12.0f}")
    if ns.quick:
        return
    size = max(ns.sizes)
    single = _child(["--child", "engine", "--size", str(size), "--iters", str(ns.iters), "--scales", "1", *common])
    print(f"\ntime to quality at {size} px (L-BFGS):")
    print(f"  single scale, {single['iterations']} iterations: loss {single['final_loss']:.4g} in "
          f"{single['wall']:.1f} s (peak RSS {single['peak_rss_mb']:.0f} MB)")
    multi = _child(["--child", "engine", "--size", str(size), "--iters", str(ns.iters), "--scales", str(ns.scales),
                    "--stop-at", repr(single["final_loss"]), *common])
    verdict = "reached" if multi["reached"] else "did NOT reach"
    print(f"  {ns.scales} scales ({ns.iters} iterations per scale at most): {verdict} it after "
          f"{multi['iterations']} iterations in {multi['wall']:.1f} s (peak RSS {multi['peak_rss_mb']:.0f} MB)")
    print(f"  ratio multi/single wall time: {multi['wall'] / single['wall']:.3f}")


if __name__ == "__main__":
    main()
