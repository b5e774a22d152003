"""Memory benchmark (#17): peak RSS of the whole dreamd process, and s/iter, per render size.

    python bench/bench_memory.py [--sizes 512 1024 2048] [--dream-sizes 2048 4096] [--quick]
    python bench/bench_memory.py --feed-forward 512 1024 2048 --sizes --dream-sizes
    python bench/bench_memory.py --whole 512 --whole-scales 1 --whole-iterations 110 --sizes --dream-sizes

Each measurement starts its own dreamd (real VGG16 weights from $DREAMRENDER_MODELS, evaluator on,
dreamd's own defaults) on 127.0.0.1, sends one request through the SDK and reads the server's
VmHWM (peak RSS) and VmRSS from /proc. Styles run one scale of warm-up + 5 iterations (L-BFGS's
warm-up fills its history, whose memory is part of the peak); s/iter is the mean of the last 5
(from the progress events' elapsed time). `--untiled` adds the untiled engine beside the tiled
default at sizes that tile. `--whole SIZE...` runs whole style renders as users send them (#28:
every iteration, previews and checkpoint scoring at their defaults) and reports the peak, the RSS
left after the job and how far that is above idle. bench/bench_memory_phases.py splits one into
phases.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from dreamrender.client import DreamClient
from dreamrender.server.engine.imaging import fit_long_side
from dreamrender.server.engine.sizing import AUTO_TILE_PIXELS, MiB, dream_memory, style_memory
from dreamrender.settings import DreamSettings, StyleSettings, default_of
from dreamrender.v1 import dreamrender_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "server" / "assets" / "chelsea.png"
STYLE = ROOT / "server" / "assets" / "starry_night.jpg"


def proc_mib(pid: int) -> dict[str, float]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) / 1024
    return out


# Runs dreamd from another installed copy (--baseline SITE: `pip install --no-deps --target SITE
# <checkout>`), past the editable install's import hook.
_LAUNCH = ("import runpy, sys; sys.meta_path = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
           "sys.path.insert(0, sys.argv.pop(1)); runpy.run_module('dreamrender.server.app', run_name='__main__')")
BASELINE: str | None = None


class Dreamd:
    """A dreamd subprocess on a free loopback port (from BASELINE's copy when `baseline`)."""

    def __init__(self, *flags: str, baseline: bool = False) -> None:
        cmd = [sys.executable, "-c", _LAUNCH, BASELINE] if baseline else [sys.executable, "-m", "dreamrender.server.app"]
        self.proc = subprocess.Popen([*cmd, "--listen", "127.0.0.1:0",
                                      "--device", "cpu", "--log-level", "WARNING", *flags],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("dreamd listening"):
            raise RuntimeError(self.proc.stderr.read())
        self.target = line.split()[-1]

    def memory(self) -> dict[str, float]:
        return proc_mib(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _per_iter(events: list, last: int) -> float:
    times = [(e.step, e.elapsed_seconds) for e in events if isinstance(e, pb.Progress)]
    (s0, t0), (s1, t1) = times[-last - 1], times[-1]
    return (t1 - t0) / (s1 - s0)


def style(size: int, optimizer: str, warmup: int, flags: tuple[str, ...] = (), baseline: bool = False,
          **extra) -> str:
    if optimizer == "lbfgs":  # until the history is full: its memory is part of the peak
        from dreamrender.server.engine.sizing import lbfgs_pairs

        warmup = max(warmup, lbfgs_pairs(StyleSettings(), size * size * 2 // 3) + 1)
    d = Dreamd(*flags, baseline=baseline)
    try:
        idle = d.memory()["VmRSS"]
        with DreamClient(d.target) as c:
            events = list(c.render_style(CONTENT, [STYLE], size=size, scales=1, iterations=warmup + 5,
                                         optimizer=optimizer, preview={"every": 0}, timeout=7200, **extra))
        time.sleep(0.5)
        m = d.memory()
    finally:
        d.stop()
    label = "baseline" if baseline else (" ".join(flags) or "defaults")
    settings = StyleSettings(optimizer=optimizer, **extra)
    estimate = style_memory([fit_long_side(300, 451, size)], settings, evaluator="--no-evaluator" not in flags)
    return (f"style {size:5d} px {optimizer:5s} {label:28s} peak {m['VmHWM']:7.0f} MB, "
            f"after {m['VmRSS']:6.0f} MB (idle {idle:.0f}; estimate {estimate / MiB:.0f} above idle), "
            f"{_per_iter(events, 5):6.2f} s/iter")


def _measured(send: Callable[[DreamClient], Any], flags: tuple[str, ...] = (), baseline: bool = False,
              settle: float = 0.5) -> tuple[Any, float, dict[str, float], float]:
    """`send(client)` against a fresh dreamd: (its value, idle RSS, the memory `settle` s after, seconds)."""
    d = Dreamd(*flags, baseline=baseline)
    try:
        idle = d.memory()["VmRSS"]
        started = time.perf_counter()
        with DreamClient(d.target) as c:
            value = send(c)
        took = time.perf_counter() - started
        time.sleep(settle)
        return value, idle, d.memory(), took
    finally:
        d.stop()


def dream(size: int, flags: tuple[str, ...] = (), baseline: bool = False) -> str:
    events, idle, m, took = _measured(lambda c: list(c.render_dream(noise=(size, size), octaves=3, steps=2,
                                                                    preview={"every": 0}, timeout=7200)),
                                      flags, baseline)
    assert isinstance(events[-1], pb.Result)
    label = "baseline" if baseline else (" ".join(flags) or "defaults")
    estimate = dream_memory(size, size, DreamSettings(octaves=3, steps=2), evaluator="--no-evaluator" not in flags)
    return (f"dream {size:5d} px 3 octaves x 2 steps {label:14s} peak {m['VmHWM']:7.0f} MB, "
            f"after {m['VmRSS']:6.0f} MB (idle {idle:.0f}; estimate {estimate / MiB:.0f} above idle), {took:6.1f} s")


def whole(size: int, scales: int, iterations: int, flags: tuple[str, ...] = ()) -> str:
    """One whole style render with dreamd's and the request's defaults (checkpoints scored)."""
    events, idle, m, took = _measured(lambda c: list(c.render_style(
        CONTENT, [STYLE], size=size, scales=scales, iterations=iterations, model="vgg16", timeout=7200)),
        flags, settle=1.0)
    assert isinstance(events[-1], pb.Result)
    scores = sum(isinstance(e, pb.CheckpointScores) for e in events)
    return (f"whole style {size:5d} px {scales} x {iterations} L-BFGS {' '.join(flags) or 'defaults':14s} "
            f"peak {m['VmHWM']:7.0f} MB ({m['VmHWM'] / 1024:.2f} GiB), after {m['VmRSS']:6.0f} MB "
            f"({m['VmRSS'] - idle:+.0f} over idle {idle:.0f}), {scores} checkpoints scored, {took:6.1f} s")


def painting(size: int, repeat: int = 3) -> str:
    """`repeat` preset paintings at `size` in a fresh dreamd: the peak, and the RSS 1 s after the last
    (onnxruntime's arena is handed back above feedforward.ARENA_KEEP_PIXELS; #28 D23, D25)."""
    from dreamrender.server.engine.sizing import feed_forward_memory

    def paint(c: DreamClient) -> None:
        for i in range(repeat):
            c.style(CONTENT, [], presets=[i], size=size, timeout=600)

    _, idle, m, took = _measured(paint, settle=1.0)
    took /= repeat
    h, w = fit_long_side(300, 451, size)
    return (f"presets {size:5d} px x{repeat}: peak {m['VmHWM'] - idle:6.0f} MB over idle {idle:.0f} (estimate "
            f"{feed_forward_memory(h, w) / MiB:.0f}), after {m['VmRSS'] - idle:+5.0f} MB, {took:5.2f} s each")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="*", default=[512, 1024, 2048])
    p.add_argument("--dream-sizes", type=int, nargs="*", default=[2048, 4096])
    p.add_argument("--optimizers", nargs="*", default=["lbfgs", "adam"])
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--flags", default="", help="extra dreamd flags for every run, as one string")
    p.add_argument("--untiled", action="store_true", help="also run tiled sizes untiled (tile_size 16384)")
    p.add_argument("--baseline", metavar="SITE", help="also run each measurement, right after, on the dreamrender "
                                                      "installed in SITE (pip install --no-deps --target SITE <checkout>)")
    p.add_argument("--whole", type=int, nargs="*", default=[], metavar="SIZE",
                   help="whole style renders at these sizes (with --whole-scales and --whole-iterations)")
    p.add_argument("--whole-scales", type=int, default=default_of(StyleSettings, "scales"))
    p.add_argument("--whole-iterations", type=int, default=default_of(StyleSettings, "iterations"))
    p.add_argument("--feed-forward", type=int, nargs="*", default=[], metavar="SIZE",
                   help="three preset paintings at each size: peak and the RSS left after them")
    args = p.parse_args()
    flags = tuple(shlex.split(args.flags))
    global BASELINE
    BASELINE = args.baseline
    for size in args.feed_forward:
        print(painting(size), flush=True)
    for size in args.whole:
        print(whole(size, args.whole_scales, args.whole_iterations, flags), flush=True)
    for size in args.sizes:
        for opt in args.optimizers:
            print(style(size, opt, args.warmup, flags), flush=True)
            if BASELINE:
                print(style(size, opt, args.warmup, flags, baseline=True), flush=True)
            if args.untiled and size * size * 2 // 3 > AUTO_TILE_PIXELS:
                print(style(size, opt, args.warmup, flags, tile_size=16384) + "  (untiled)", flush=True)
    for size in args.dream_sizes:
        print(dream(size, flags), flush=True)
        if BASELINE:
            print(dream(size, flags, baseline=True), flush=True)


if __name__ == "__main__":
    main()
