"""What a health probe costs: `dreamctl health` in a new process (the old exec probe) against one
gRPC health check on a new plaintext connection (what kubelet's own gRPC probe does).

    python bench/bench_probe.py [--n 10]

Starts a dreamd (tiny models, TLS off; the exec probe's cost is its Python start-up, which TLS
does not change) on 127.0.0.1 with --health-listen, then runs each probe `n` times in turn. Prints
wall time per probe and the CPU time (user + sys) and peak RSS of the probing process.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import BIN, Dreamd, free_port  # noqa: E402


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def exec_probe(target: str, n: int) -> str:
    walls, cpu0 = [], _children_cpu()
    for _ in range(n):
        t = time.perf_counter()
        out = subprocess.run([str(BIN / "dreamctl"), "--server", target, "--timeout", "4", "health"],
                             capture_output=True, text=True, check=True).stdout
        walls.append(time.perf_counter() - t)
        assert "SERVING" in out, out
    cpu = (_children_cpu() - cpu0) / n
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return f"wall p50 {sorted(walls)[n // 2] * 1e3:.0f} ms, CPU {cpu * 1e3:.0f} ms, peak RSS {rss:.0f} MB"


def grpc_probe(target: str, n: int) -> str:
    walls = []
    cpu0 = time.process_time()
    for _ in range(n):
        t = time.perf_counter()
        with grpc.insecure_channel(target) as channel:  # a new connection each time, as kubelet's
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=4).status
        walls.append(time.perf_counter() - t)
        assert status == health_pb2.HealthCheckResponse.SERVING
    cpu = (time.process_time() - cpu0) / n
    return f"wall p50 {sorted(walls)[n // 2] * 1e3:.1f} ms, CPU {cpu * 1e3:.1f} ms (in this process, no new one)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        health_port = free_port()
        srv = Dreamd(Path(tmp), "--health-listen", f"127.0.0.1:{health_port}", "--no-evaluator")
        try:
            print(f"exec probe (dreamctl health, a new process): {exec_probe(srv.target, args.n)}")
            print(f"gRPC probe (--health-listen, plaintext):     {grpc_probe(f'127.0.0.1:{health_port}', args.n)}")
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
