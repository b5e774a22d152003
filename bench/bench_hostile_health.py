"""Health under hostile and heavy calls (#28 acceptance 6): health must answer within 100 ms.

    python bench/bench_hostile_health.py [--only WORDS ...] [--baseline SITE]

Starts one dreamd (real weights from $DREAMRENDER_MODELS, dreamd's defaults) on 127.0.0.1:0 and a
health poller (one Check every 20 ms on its own channel). Then runs each scenario alone and prints
the scenario's outcome and time, and the health latency while it ran (p50, p99, max). The
scenarios are round three's hostile cases plus the heavy work they were measured beside:
oversized and compressed messages, huge repeated fields, garbage to health, a lying PNG, Evaluate
and feed-forward paintings at 2048 px, a zoom animation encoded as GIF while a Gatys render runs, a
2048 px zoom alone, and a Gatys render alone (its checkpoints scored, each followed by a heap trim).
Each line says when its slowest check came, counted from the scenario's start. `--baseline SITE`
runs each scenario again, right after ours, against dreamd from another installed copy.
"""
from __future__ import annotations

import argparse
import io
import multiprocessing
import multiprocessing.connection
import struct
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_memory  # noqa: E402
from bench_memory import CONTENT, STYLE, Dreamd  # noqa: E402

from dreamrender.client import DreamClient, DreamError, dream_request  # noqa: E402
from dreamrender.v1 import dreamrender_pb2 as pb  # noqa: E402

SERVICE = "/dreamrender.v1.DreamRenderService/"


def _poll(target: str, conn: multiprocessing.connection.Connection) -> None:
    """The poller process: health checks every 20 ms; on "window" it starts collecting (each check's
    wall-clock start and latency), on "end" it sends what it collected; on "quit" it stops. A
    process of its own, so that the bench's own clients (serialising 60 MiB, compressing 200 MiB)
    never delay its checks."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        samples: list[tuple[float, float]] | None = None
        while True:
            if conn.poll():
                msg = conn.recv()
                if msg == "quit":
                    return
                if msg == "window":
                    samples = []
                elif msg == "end":
                    conn.send(samples or [])
                    samples = None
            wall, t = time.time(), time.perf_counter()
            stub.Check(health_pb2.HealthCheckRequest(), timeout=30)
            if samples is not None:
                samples.append((wall, time.perf_counter() - t))
            time.sleep(0.02)


class Poller:
    """Runs _poll in a child process; `window()` collects one scenario's health latencies."""

    def __init__(self, target: str) -> None:
        self.conn, child = multiprocessing.Pipe()
        self.proc = multiprocessing.get_context("spawn").Process(target=_poll, args=(target, child), daemon=True)
        self.proc.start()

    def window(self, name: str, scenario: Callable[[], str]) -> None:
        self.conn.send("window")
        time.sleep(0.1)  # the poller has taken the window before the scenario starts
        start, t = time.time(), time.perf_counter()
        try:
            outcome = scenario()
        except DreamError as err:
            outcome = err.code.name
        took = time.perf_counter() - t
        time.sleep(0.1)
        self.conn.send("end")
        samples = self.conn.recv()
        lat = sorted(latency for _, latency in samples)
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3  # noqa: E731
        worst = max(samples, key=lambda s: s[1])[0] - start  # when it came: which phase of the scenario
        print(f"{name:34s} {outcome:26s} {took:7.2f} s   health p50 {p(0.5):5.1f} ms, p99 {p(0.99):6.1f} ms, "
              f"max {lat[-1] * 1e3:6.1f} ms (at {worst:.1f} s) over {len(lat)}", flush=True)

    def close(self) -> None:
        self.conn.send("quit")
        self.proc.join(10)


def _raw(target: str, method: str, body: bytes, repeat: int, compression=None) -> str:
    codes = []
    with grpc.insecure_channel(target, compression=compression,
                               options=[("grpc.max_send_message_length", 256 << 20)]) as ch:
        call = ch.unary_unary(method, request_serializer=None, response_deserializer=None)
        for _ in range(repeat):
            try:
                call(body, timeout=60)
                codes.append("OK")
            except grpc.RpcError as err:
                codes.append(err.code().name)
    return f"{repeat} x {max(set(codes), key=codes.count)}"


def _lying_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", 8000, 8000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def scenarios(target: str) -> dict[str, Callable[[], str]]:
    def c() -> DreamClient:
        return DreamClient(target)

    def zoom(client: DreamClient, size: int) -> str:
        data = client.dream(CONTENT, size=size, octaves=1, steps=2, zoom_frames=12, result_format="gif", timeout=3600)
        return f"GIF of {len(data) / 1e6:.1f} MB"

    def zoom_beside_gatys() -> str:
        with c() as client:
            gatys = threading.Thread(target=lambda: client.style(CONTENT, [STYLE], size=512, scales=1,
                                                                 iterations=60, timeout=3600))
            gatys.start()
            outcome = zoom(client, 1024)
            gatys.join()
        return outcome

    def zoom_alone() -> str:
        with c() as client:
            return zoom(client, 2048)

    def style_alone() -> str:
        with c() as client:
            events = list(client.render_style(CONTENT, [STYLE], size=512, scales=1, iterations=60, timeout=3600))
        return f"{sum(isinstance(e, pb.CheckpointScores) for e in events)} checkpoints scored (each then trimmed)"

    def paintings() -> str:
        with c() as client:
            for i in range(2):
                client.style(CONTENT, [], presets=[i], size=2048, timeout=600)
        return "2 paintings"

    def evaluate() -> str:
        big = io.BytesIO()
        Image.open(CONTENT).convert("RGB").resize((2048, 1362)).save(big, "PNG")
        with c() as client:
            rows = client.evaluate(CONTENT, [STYLE], [big.getvalue()], timeout=600)
        return f"{len(rows)} candidate scored"

    def terms() -> str:
        req = dream_request(CONTENT, terms=[("relu4_3", (), 1.0)] * 1_000_000)
        return _raw(target, SERVICE + "RenderDream", req.SerializeToString(), 1)

    big = pb.GetJobRequest(job_id="a" * (60 << 20)).SerializeToString()  # made before any window
    zeros = pb.GetJobRequest(job_id="0" * (200 << 20)).SerializeToString()
    return {
        "60 MiB GetJob x5": lambda: _raw(target, SERVICE + "GetJob", big, 5),
        "gzip of 200 MiB of zeros x3": lambda: _raw(target, SERVICE + "GetJob", zeros, 3, grpc.Compression.Gzip),
        "0xff x64 to health x300": lambda: _raw(target, "/grpc.health.v1.Health/Check", b"\xff" * 64, 300),
        "1,000,000 dream terms": terms,
        "PNG claiming 8000x8000 x20": lambda: _raw(target, SERVICE + "RenderDream", pb.RenderDreamRequest(
            image=pb.Image(data=_lying_png()), size=512).SerializeToString(), 20),
        "Evaluate, 2048 px candidate": evaluate,
        "presets at 2048 px x2": paintings,
        "zoom 1024 px x12 GIF beside Gatys": zoom_beside_gatys,
        "zoom 2048 px x12 GIF alone": zoom_alone,
        "style 512 px 1 x 60, checkpoints scored": style_alone,
    }


def main() -> None:  # noqa: D103
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", help="scenario names containing these words")
    p.add_argument("--idle", type=float, default=3.0, help="seconds of the idle window (the machine's own noise)")
    p.add_argument("--baseline", metavar="SITE", help="also run each scenario against dreamd from another installed "
                   "copy (pip install --no-deps --target SITE <checkout>), right after ours")
    args = p.parse_args()
    bench_memory.BASELINE = args.baseline
    runs = [("", Dreamd())] + ([(" (baseline)", Dreamd(baseline=True))] if args.baseline else [])
    pollers = [Poller(d.target) for _, d in runs]
    try:
        for _, d in runs:
            with DreamClient(d.target) as client:  # models loaded before any window
                client.style(CONTENT, [], presets=[0], size=256, timeout=600)
        pollers[0].window("idle", lambda: (time.sleep(args.idle), "idle")[1])
        plans = [scenarios(d.target) for _, d in runs]
        for name in plans[0]:
            if not args.only or any(w in name for w in args.only):
                for (label, _), poller, plan in zip(runs, pollers, plans):
                    poller.window(name + label, plan[name])
    finally:
        for (_, d), poller in zip(runs, pollers):
            poller.close()
            d.stop()


if __name__ == "__main__":
    main()
