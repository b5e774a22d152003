"""Worst health-check latency while an 8000x8000 PNG dream request (size 512) is accepted and decoded.

    python bench/bench_health_latency.py

Starts a dreamd (tiny model) on 127.0.0.1:0 in this process; prints the health p50 and worst
latency during the request, and the process peak RSS before and after.
"""
import io, sys, threading, time, tempfile, resource
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from PIL import Image
from tests.conftest import start_server
from tests._tiny_ff import write_tiny_feed_forward
from dreamrender.client import DreamClient
from dreamrender.v1 import dreamrender_pb2 as pb
buf = io.BytesIO(); Image.new("RGB", (8000, 8000), (90, 120, 200)).save(buf, format="PNG", compress_level=9)
data = buf.getvalue()
d = Path(tempfile.mkdtemp()); write_tiny_feed_forward(d)
srv = start_server(d, max_input_pixels=64_000_000, max_side=4096)
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
done = threading.Event(); took = []
def dream():
    t = time.perf_counter()
    with DreamClient(srv.target) as c:
        c.dream(pb.Image(data=data), size=512, octaves=1, steps=1, timeout=120)
    took.append(time.perf_counter() - t); done.set()
with DreamClient(srv.target) as c:
    c.health()
    threading.Thread(target=dream).start()
    lat = []
    while not done.is_set():
        t = time.perf_counter(); c.health(); lat.append(time.perf_counter() - t); time.sleep(0.01)
print(f"PNG {len(data)/1e3:.0f} KB; dream (decode + 1 step at 512) {took[0]:.2f} s; health p50 {sorted(lat)[len(lat)//2]*1e3:.1f} ms, "
      f"worst {max(lat)*1e3:.1f} ms over {len(lat)} checks; peak RSS {rss0:.0f} -> {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} MB")
srv.stop()
