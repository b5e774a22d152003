"""Feed-forward style benchmark: latency as a client sees it, and what a painted start buys Gatys.

    python bench/bench_feedforward.py [--calls 10] [--sizes 512 1024 2048] [--iters 300] [--skip-quality]

Prints, in one run:
  * latency: a real dreamd on 127.0.0.1 (warm: one call of each kind first), --calls calls each of
    the arbitrary-style network (chelsea + Starry Night) and of preset 7, at each size: p50 and max
    from the SDK's call to its Result, and dreamd's peak RSS (VmHWM) after each size;
  * time to quality at 512 px: a single-scale, content-initialised L-BFGS run of --iters iterations
    (its final loss is the target), and a run started from the feed-forward painting
    (`init: feed_forward`); the wall time each needs to reach the target, their ratio, and the
    loss curves. The losses are the engine's (the evaluator's formulas, checked to 1e-3 by the
    tests); both final images are also scored by the project's onnxruntime evaluator.
Needs vgg16 and the feed-forward networks in $DREAMRENDER_MODELS
(dreamctl models pull vgg16 multistyle26 arbitrary_predict arbitrary_transform).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "server" / "assets" / "chelsea.png"
STYLE = ROOT / "server" / "assets" / "starry_night.jpg"


def _start_dreamd() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dreamd"), "--listen", "127.0.0.1:0", "--no-evaluator"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()  # "dreamd listening on HOST:PORT"
    return proc, line.split()[-1]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def latency(calls: int, sizes: list[int]) -> None:
    from dreamrender.client import DreamClient
    from dreamrender.v1 import dreamrender_pb2 as pb

    proc, target = _start_dreamd()
    kinds = {"arbitrary": dict(styles=[STYLE], method="feed_forward"), "preset 7": dict(styles=[], presets=[7])}
    try:
        with DreamClient(target) as c:
            for kw in kinds.values():  # warm: sessions loaded once per server
                c.style(CONTENT, size=256, timeout=60, **kw)
            print(f"{'size':>5} {'kind':>10} {'p50 s':>7} {'max s':>7} {'first frame p50 s':>18} {'dreamd peak RSS MB':>19}")
            for size in sizes:
                for name, kw in kinds.items():
                    took, first = [], []
                    for _ in range(calls):
                        t0 = time.perf_counter()
                        for ev in c.render_style(CONTENT, size=size, timeout=120, **kw):
                            if isinstance(ev, pb.Frame) and len(first) < len(took) + 1:
                                first.append(time.perf_counter() - t0)
                        took.append(time.perf_counter() - t0)
                    print(f"{size:>5} {name:>10} {statistics.median(took):7.3f} {max(took):7.3f} "
                          f"{statistics.median(first):18.3f} {_peak_rss_mb(proc.pid):19.0f}", flush=True)
    finally:
        proc.terminate()
        proc.wait(30)


def _run(init: str, iters: int, size: int) -> tuple[list[tuple[float, float]], object]:
    """(seconds since the job started, best loss so far) per iteration, and the result image."""
    import torch
    from PIL import Image

    from dreamrender.models import ModelStore, get_model, weights_path
    from dreamrender.server.engine.events import Progress
    from dreamrender.server.engine.feedforward import (FeedForwardNets, feed_forward_image, free_size_model,
                                                       onnx_session)
    from dreamrender.server.engine.imaging import to_tensor
    from dreamrender.server.engine.style import render_style
    from dreamrender.server.memory import keep_heap
    from dreamrender.settings import PreviewSettings, StyleSettings

    keep_heap()
    net = get_model("vgg16")
    content = to_tensor(Image.open(CONTENT).convert("RGB"))
    style = to_tensor(Image.open(STYLE).convert("RGB"))
    s = StyleSettings(size=size, scales=1, iterations=iters, init=init, preview=PreviewSettings(every=0))
    store = ModelStore()
    nets = FeedForwardNets(predict=onnx_session(weights_path("arbitrary_predict", store).read_bytes()),
                           transform=onnx_session(free_size_model(weights_path("arbitrary_transform", store).read_bytes())))
    curve: list[tuple[float, float]] = []
    best = float("inf")
    t0 = time.perf_counter()
    init_image = feed_forward_image(nets, content, [style], s, size) if init == "feed_forward" else None

    def on_event(ev) -> None:
        nonlocal best
        if isinstance(ev, Progress):
            best = min(best, ev.values["total"])
            curve.append((time.perf_counter() - t0, best))

    with torch.inference_mode(False):
        out = render_style(net, content, [style], settings=s, init_image=init_image, on_event=on_event)
    return curve, out


def quality(iters: int, size: int) -> None:
    import numpy as np
    from PIL import Image

    from dreamrender.client.scoring import StyleTerms
    from dreamrender.models import COMMON_EXPORTS, ModelStore
    from dreamrender.server.evaluator import Evaluator

    _run("content", 3, size)  # warm-up: the first iterations of a process pay one-off costs
    base, base_img = _run("content", iters, size)
    ff, ff_img = _run("feed_forward", iters, size)
    target = base[-1][1]
    reach = next((t for t, loss in ff if loss <= target), None)
    print(f"\ntime to quality at {size} px: content init reaches {target:.4g} after {iters} iterations in "
          f"{base[-1][0]:.1f} s")
    if reach is None:
        print(f"feed-forward init: not reached in {iters} iterations ({ff[-1][0]:.1f} s; best {ff[-1][1]:.4g})")
    else:
        print(f"feed-forward init: reaches it in {reach:.1f} s = {reach / base[-1][0]:.2f}x")
    print(f"{'iteration':>9} {'content init s / loss':>24} {'feed-forward init s / loss':>28}")
    for i in (0, 9, 24, 49, 99, 149, 199, 249, iters - 1):
        if i < min(len(base), len(ff)):
            print(f"{i + 1:>9} {base[i][0]:9.1f} / {base[i][1]:10.4g}   {ff[i][0]:11.1f} / {ff[i][1]:10.4g}")
    scorer = Evaluator(ModelStore()).scorer("vgg16", list(COMMON_EXPORTS))

    content = np.asarray(Image.open(CONTENT).convert("RGB"), dtype=np.float32).transpose(2, 0, 1)[None] / 255
    style = np.asarray(Image.open(STYLE).convert("RGB"), dtype=np.float32).transpose(2, 0, 1)[None] / 255
    for name, img in (("content init", base_img), ("feed-forward init", ff_img)):
        total = scorer.style_terms(content, [style], [img.numpy()], terms=StyleTerms())[0]["total"]
        print(f"evaluator (onnxruntime) total of the {name} result: {total:.4g}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--quality-size", type=int, default=512)
    p.add_argument("--skip-quality", action="store_true")
    p.add_argument("--skip-latency", action="store_true")
    args = p.parse_args()
    if not args.skip_latency:
        latency(args.calls, args.sizes)
    if not args.skip_quality:
        quality(args.iters, args.quality_size)


if __name__ == "__main__":
    main()
