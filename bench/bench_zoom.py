"""Dreams, round two (#14): what a zoom animation costs per frame, whether its memory stays flat,
and what Laplacian gradient normalisation costs per step.

    python bench/bench_zoom.py [--size 512] [--frames 60] [--model vgg16]

One dreamd (real weights from $DREAMRENDER_MODELS) on 127.0.0.1, fed through the SDK:
- a zoom animation of `frames` frames at `size` px, 5 steps a frame: seconds per frame (between
  the streamed frames, after the first) against a single 5-step one-octave dream of the same
  size, and dreamd's RSS (current, and peak so far) when frames 10 and `frames` arrive;
- 10-step one-octave dreams with std and with Laplacian normalisation: seconds per step.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench_memory import proc_mib  # noqa: E402 (dreamd's VmRSS and VmHWM in MiB)
from dreamrender.client import DreamClient
from dreamrender.v1 import dreamrender_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "server" / "assets" / "chelsea.png"


def zoom(c: DreamClient, pid: int, size: int, frames: int, model: str) -> tuple[float, dict[int, dict]]:
    stamps, rss = {}, {}
    for ev in c.render_dream(PHOTO, model=model, size=size, octaves=1, steps=5, zoom_frames=frames, zoom=1.05,
                             timeout=7200):
        if isinstance(ev, pb.Frame) and ev.stage == "frame":
            stamps[ev.stage_index] = time.perf_counter()
            if ev.stage_index in (10, frames - 1):
                rss[ev.stage_index + 1] = proc_mib(pid)
    per_frame = (stamps[frames - 1] - stamps[1]) / (frames - 2)
    return per_frame, rss


def still(c: DreamClient, size: int, model: str, **kw) -> float:
    started = time.perf_counter()
    c.dream(PHOTO, model=model, size=size, octaves=1, timeout=3600, **kw)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--model", default="vgg16")
    args = ap.parse_args()
    proc = subprocess.Popen([sys.executable, "-m", "dreamrender.server.app", "--listen", "127.0.0.1:0", "--device",
                             "cpu", "--log-level", "WARNING", "--no-evaluator"], stdout=subprocess.PIPE, text=True)
    target = proc.stdout.readline().split()[-1]
    try:
        with DreamClient(target) as c:
            still(c, args.size, args.model, steps=2)  # warm-up: the model loads
            single = still(c, args.size, args.model, steps=5)
            per_frame, rss = zoom(c, proc.pid, args.size, args.frames, args.model)
            print(f"zoom at {args.size} px, 5 steps a frame: {per_frame:.2f} s/frame; a single 5-step octave "
                  f"{single:.2f} s: ratio {per_frame / single:.2f}x")
            for frame, m in sorted(rss.items()):
                print(f"  dreamd at frame {frame}: RSS {m['VmRSS']:.0f} MiB, peak so far {m['VmHWM']:.0f} MiB")
            std = still(c, args.size, args.model, steps=10, gradient_norm="std") / 10
            lap = still(c, args.size, args.model, steps=10, gradient_norm="laplacian") / 10
            print(f"10-step dream at {args.size} px: std {std:.3f} s/step, laplacian {lap:.3f} s/step: "
                  f"ratio {lap / std:.2f}x")
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
