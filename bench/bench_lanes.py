"""Lanes under mixed load (#26), measured in one run through a real dreamd with real weights.

    python bench/bench_lanes.py [--size 512] [--calls 20] [--window 25] [--gap 1.0] [--skip-no-pause]

1. Idle: feed-forward latency (preset 7 at --size, --calls calls one after another, p50/p95), then
   throughput (requests/s) at concurrency 1, 4 and 16 for --window/3 s each, beside plain
   onnxruntime in one process (the same network, pixels and threads; each "caller" a thread
   calling session.run in a loop), the two alternating in three slices; each of our callers
   keeps one client.
2. Busy: a Gatys render (vgg16, --size, one scale, L-BFGS) runs; its time per iteration is
   measured over --window s alone, then over --window s while 4 callers send paintings back to
   back, then alone again (L-BFGS's pace drifts: alone is the mean of both); after the first
   window, --calls paintings from one caller, one every --gap s (an interactive front end), give
   the busy latency.
3. The same busy phase with `--short-share 0` (no pausing: the lanes' threads share the cores
   freely), to show why the long job pauses; and the idle throughput with batching on
   (--ff-max-batch 8 --ff-max-wait-ms 5) beside off.
Needs vgg16 and multistyle26 in $DREAMRENDER_MODELS.
"""
from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT.parent / "shared" / "images"
PRESET = 7


def _pixels(size: int, fmt: str = "png") -> tuple[bytes, bytes]:
    """The content (a real photo at long side `size`, as `fmt`) and the style image, as sent."""
    from PIL import Image

    photo = Image.open(IMAGES / "content" / "astronaut.png").convert("RGB")
    photo.thumbnail((size, size))
    buf = io.BytesIO()
    photo.save(buf, fmt.upper(), **({"quality": 90} if fmt == "jpeg" else {}))
    return buf.getvalue(), (IMAGES / "styles" / "starry_night.jpg").read_bytes()


def _dreamd(*flags: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dreamd"), "--listen", "127.0.0.1:0", "--device", "cpu",
                             "--no-evaluator", *flags], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if "listening" not in line:
        raise SystemExit("dreamd did not start")
    return proc, line.split()[-1]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


FORMAT = {"result_format": "png"}  # the result's encoding (--format)


def _paint(target: str, content: bytes, size: int, client=None) -> float:
    """One preset painting; through `client` if given (a caller that keeps its channel), else a new one."""
    from dreamrender.client import DreamClient

    if client is None:
        with DreamClient(target) as c:
            return _paint(target, content, size, c)
    t = time.perf_counter()
    client.style(content, [], presets=[PRESET], size=size, timeout=600, **FORMAT)
    return time.perf_counter() - t


def _latency(target: str, content: bytes, size: int, calls: int, gap: float = 0.0) -> list[float]:
    out = []
    for _ in range(calls):
        out.append(_paint(target, content, size))
        time.sleep(gap)
    return out


def _load(call, callers: int, seconds: float, context=None) -> int:
    """`callers` threads calling `call()` back to back for `seconds` (each `call(c)` within its own
    `context()` if given: a caller's client); how many calls completed."""
    done, stop = [0] * callers, time.monotonic() + seconds

    def worker(i: int) -> None:
        if context is not None:
            with context() as c:
                while time.monotonic() < stop:
                    call(c)
                    done[i] += 1
            return
        while time.monotonic() < stop:
            call()
            done[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done)


def _plain_session(content: bytes, size: int):
    """Plain onnxruntime: the 26-style network on the same pixels the server paints."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from dreamrender.models import ModelStore, weights_path
    from dreamrender.server.codec import decode_image
    from dreamrender.server.engine.imaging import resize_long_side, to_tensor

    session = ort.InferenceSession(weights_path("multistyle26", ModelStore()).read_bytes(),
                                   providers=["CPUExecutionProvider"])
    image = resize_long_side(to_tensor(decode_image(content, "content", max_pixels=64_000_000)), size)
    h, w = image.shape[-2:]
    x = torch.nn.functional.pad(image.float(), (0, -w % 4, 0, -h % 4), mode="reflect").numpy()
    weights = np.zeros(26, np.float32)
    weights[PRESET] = 1
    return lambda: session.run(None, {"image": x, "style_weights": weights})


def throughput(target: str, content: bytes, size: int, seconds: float, plain,
               rounds: int = 3) -> dict[int, tuple[float, float]]:
    """Requests/s of dreamd and of plain onnxruntime at each concurrency. The two alternate in
    `rounds` slices of seconds/rounds each, so that a drift in the machine's speed (this host's
    varies by up to a third) falls on both; each caller keeps one client, as a service would."""
    from dreamrender.client import DreamClient

    rates, piece = {}, seconds / rounds
    for callers in (1, 4, 16):
        served = base_served = 0
        for _ in range(rounds):
            served += _load(lambda c: _paint(target, content, size, c), callers, piece, lambda: DreamClient(target))
            base_served += _load(plain, callers, piece) if plain is not None else 0
        ours, base = served / seconds, (base_served / seconds if plain is not None else float("nan"))
        rates[callers] = (ours, base)
        print(f"  concurrency {callers:2d}: dreamd {ours:5.2f} req/s, plain onnxruntime {base:5.2f} req/s, "
              f"ratio {ours / base:.2f} (goal >= 0.8)", flush=True)
    return rates


class _Gatys:
    """A long Gatys render in a thread; the arrival time of each progress event and its step."""

    def __init__(self, target: str, content: bytes, style: bytes, size: int) -> None:
        self.marks: list[tuple[float, int]] = []
        self.job_id = ""
        self.target = target
        self.thread = threading.Thread(target=self._run, args=(content, style, size), daemon=True)
        self.thread.start()

    def _run(self, content: bytes, style: bytes, size: int) -> None:
        from dreamrender.client import DreamClient, DreamError
        from dreamrender.v1 import dreamrender_pb2 as pb

        with DreamClient(self.target) as c:
            try:
                for ev in c.render_style(content, [style], size=size, scales=1, iterations=5000, timeout=3600):
                    if isinstance(ev, pb.Accepted):
                        self.job_id = ev.job_id
                    elif isinstance(ev, pb.Progress):
                        self.marks.append((time.monotonic(), ev.step))
            except DreamError:
                pass  # cancelled at the end

    def _steps_at(self, t: float) -> float:
        """Iterations done at time t, interpolated between progress events (a pause between two
        events then counts in whichever window it falls)."""
        for (t0, s0), (t1, s1) in zip(self.marks, self.marks[1:]):
            if t0 <= t <= t1:
                return s0 + (s1 - s0) * (t - t0) / (t1 - t0)
        return float("nan")

    def rate(self, start: float, end: float) -> float:
        """Seconds per iteration between two times."""
        return (end - start) / (self._steps_at(end) - self._steps_at(start))

    def wait_started(self) -> None:
        while len(self.marks) < 3:
            time.sleep(0.2)

    def stop(self) -> None:
        from dreamrender.client import DreamClient

        with DreamClient(self.target) as c:
            c.cancel_job(self.job_id)
        self.thread.join(60)


def busy(target: str, content: bytes, style: bytes, size: int, a: argparse.Namespace,
         idle_p50: float) -> None:
    gatys = _Gatys(target, content, style, size)
    gatys.wait_started()
    t0 = time.monotonic()
    time.sleep(a.window)
    t1 = time.monotonic()
    lat = _latency(target, content, size, a.calls, a.gap)
    p50, p95 = statistics.median(lat), _pct(lat, 0.95)
    print(f"  feed-forward while Gatys runs (one caller, one call every {a.gap:g} s): p50 {p50 * 1000:.0f} ms, "
          f"p95 {p95 * 1000:.0f} ms; p50 {p50 / idle_p50:.2f}x idle (goal <= 2x)", flush=True)
    t2 = time.monotonic()
    served = _load(lambda: _paint(target, content, size), 4, a.window)
    t3 = time.monotonic()
    time.sleep(a.window)
    t4 = time.monotonic()
    while gatys.marks[-1][0] < t4:  # the last window's end needs a progress event after it
        time.sleep(0.2)
    alone = (gatys.rate(t0, t1) + gatys.rate(t3, t4)) / 2  # before and after: L-BFGS's pace drifts
    loaded = gatys.rate(t2, t3)
    gatys.stop()
    print(f"  Gatys {size} px: {gatys.rate(t0, t1):.3f} and {gatys.rate(t3, t4):.3f} s/iteration alone (before and "
          f"after), {loaded:.3f} s/iteration while 4 callers paint back to back for {a.window:g} s "
          f"({served / (t3 - t2):.2f} paintings/s served): {loaded / alone:.2f}x (goal <= 1.5x)", flush=True)


def run_server(label: str, flags: list[str], content: bytes, style: bytes, a: argparse.Namespace, plain,
               busy_phase: bool) -> None:
    print(f"\n== dreamd {' '.join(flags) or '(defaults)'}: {label}", flush=True)
    proc, target = _dreamd(*flags)
    try:
        _latency(target, content, a.size, 2)  # warm: the session loads
        lat = _latency(target, content, a.size, a.calls)
        idle_p50 = statistics.median(lat)
        print(f"  feed-forward {a.size} px, idle: p50 {idle_p50 * 1000:.0f} ms, p95 {_pct(lat, 0.95) * 1000:.0f} ms",
              flush=True)
        throughput(target, content, a.size, a.window / 3, plain)
        if busy_phase:
            busy(target, content, style, a.size, a, idle_p50)
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--calls", type=int, default=20)
    p.add_argument("--window", type=float, default=40.0, help="seconds of each Gatys window and of the loaded one")
    p.add_argument("--gap", type=float, default=1.0)
    p.add_argument("--skip-no-pause", action="store_true")
    p.add_argument("--skip-batching", action="store_true")
    p.add_argument("--idle-only", action="store_true", help="only the idle latency and throughput, default flags")
    p.add_argument("--format", default="png", choices=("png", "jpeg"), help="the paintings' result encoding")
    p.add_argument("--content-format", default="png", choices=("png", "jpeg"), help="the photo's encoding, as sent")
    p.add_argument("--dreamd", nargs="*", default=[], metavar="FLAG", help="more dreamd flags, e.g. --short-jobs=4")
    a = p.parse_args()
    FORMAT["result_format"] = a.format
    import os

    import onnxruntime

    print(f"machine: {os.cpu_count()} cores; onnxruntime {onnxruntime.__version__}; photo sent as {a.content_format}, "
          f"paintings returned as {a.format}")
    content, style = _pixels(a.size, a.content_format)
    plain = _plain_session(content, a.size)
    run_server("lanes, the long job pausing for short work (the default)", a.dreamd, content, style, a, plain,
               not a.idle_only)
    if not a.skip_batching and not a.idle_only:
        run_server("batching on", [*a.dreamd, "--ff-max-batch", "8", "--ff-max-wait-ms", "5"], content, style, a,
                   plain, False)
    if not a.skip_no_pause and not a.idle_only:
        run_server("lanes without pausing (threads share the cores)", [*a.dreamd, "--short-share", "0"], content,
                   style, a, None, True)


if __name__ == "__main__":
    main()
