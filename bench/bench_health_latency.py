"""Health-check latency while an 8000x8000 PNG dream request (size 512) is accepted and decoded.

    python bench/bench_health_latency.py

Starts a dreamd (tiny model) on 127.0.0.1:0 in this process and sends the request twice: cold (the
first job of the server also builds the model) and warm. For each, prints the health p50 and worst
latency (target: under 100 ms), and the process peak RSS.
"""
import io
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from PIL import Image  # noqa: E402

from dreamrender.client import DreamClient  # noqa: E402
from dreamrender.v1 import dreamrender_pb2 as pb  # noqa: E402
from tests._tiny_ff import write_tiny_feed_forward  # noqa: E402
from tests.conftest import start_server  # noqa: E402


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(target: str, data: bytes) -> str:
    done, took = threading.Event(), []

    def dream() -> None:
        started = time.perf_counter()
        with DreamClient(target) as c:
            c.dream(pb.Image(data=data), size=512, octaves=1, steps=1, timeout=120)
        took.append(time.perf_counter() - started)
        done.set()

    with DreamClient(target) as c:
        c.health()
        threading.Thread(target=dream).start()
        lat = []
        while not done.is_set():
            started = time.perf_counter()
            c.health()
            lat.append(time.perf_counter() - started)
            time.sleep(0.01)
    lat.sort()
    return (f"dream (decode + 1 step at 512) {took[0]:.2f} s; health p50 {lat[len(lat) // 2] * 1e3:.1f} ms, "
            f"worst {lat[-1] * 1e3:.1f} ms over {len(lat)} checks; peak RSS {_peak_mb():.0f} MB")


def main() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8000, 8000), (90, 120, 200)).save(buf, format="PNG", compress_level=9)
    data = buf.getvalue()
    store = Path(tempfile.mkdtemp())
    write_tiny_feed_forward(store)
    srv = start_server(store, max_input_pixels=64_000_000, max_side=4096)
    try:
        print(f"8000x8000 PNG of {len(data) / 1e3:.0f} KB; idle peak RSS {_peak_mb():.0f} MB")
        print("cold (first job builds the model):", measure(srv.target, data))
        print("warm:                             ", measure(srv.target, data))
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
