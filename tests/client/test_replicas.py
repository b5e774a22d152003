"""The SDK against three real dreamd replicas on loopback addresses behind a local DNS name:
a client sees a replica added after it connected (dreamd's connection age makes it re-resolve),
and a full replica is routed around (RESOURCE_EXHAUSTED is retried on the next one)."""
from __future__ import annotations

import re
import socket
import threading
import time
import urllib.request
from collections import Counter

import pytest

from dreamrender.client import DreamClient, DreamError
from dreamrender.v1 import dreamrender_pb2 as pb

from .._dns import LocalDns
from ..conftest import Dreamd, free_port

ADDRESSES = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
# The channel may re-resolve every 0.5 s (gRPC's default floor is 30 s, a real cluster's matter).
FAST_DNS = [("grpc.dns_min_time_between_resolutions_ms", 500)]


def _port_free_everywhere() -> int:
    """A port free on every test address (each replica binds its own address, same port)."""
    for _ in range(20):
        with socket.socket() as s:
            s.bind((ADDRESSES[0], 0))
            port = s.getsockname()[1]
        try:
            for address in ADDRESSES[1:]:
                with socket.socket() as s:
                    s.bind((address, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on all three loopback addresses")


def _replica(tmp_path, i: int, port: int, *flags: str) -> tuple[tuple, dict]:
    """Dreamd's arguments for replica i (Dreamd.many starts them at once)."""
    return (tmp_path / f"r{i}", "--server-id", f"r{i}", "--no-evaluator", *flags), {"listen": f"{ADDRESSES[i]}:{port}"}


def _served_by(client: DreamClient, steps: int = 1, timeout: float = 30) -> str:
    events = list(client.render_dream(noise=(32, 32), model="tiny", octaves=1, steps=steps, timeout=timeout))
    assert isinstance(events[-1], pb.Result)
    return events[0].server_id


def test_a_client_finds_a_replica_started_after_it_connected(tmp_path):
    port = _port_free_everywhere()
    age = ("--max-connection-age", "1", "--max-connection-age-grace", "30")
    replicas = Dreamd.many([_replica(tmp_path, i, port, *age) for i in range(2)])
    try:
        with LocalDns("dreamd.test", ADDRESSES[:2]) as dns, \
                DreamClient(f"dns://127.0.0.1:{dns.port}/dreamd.test:{port}", options=FAST_DNS) as client:
            before = {_served_by(client) for _ in range(6)}
            assert before == {"r0", "r1"}
            replicas += Dreamd.many([_replica(tmp_path, 2, port, *age)])
            dns.addresses = list(ADDRESSES)
            started, seen = time.monotonic(), []
            while "r2" not in seen and time.monotonic() - started < 15:
                seen.append(_served_by(client))
            waited = time.monotonic() - started
        # Within a few connection ages (1 s here; 300 s by default) the new replica gets calls.
        assert "r2" in seen, f"no call reached the new replica in {waited:.1f} s: {Counter(seen)}"
    finally:
        for r in replicas:
            r.stop()


def test_a_full_replica_is_routed_around(tmp_path):
    port = _port_free_everywhere()
    metrics_port = free_port()
    replicas = Dreamd.many([_replica(tmp_path, i, port, "--max-queue", "0" if i == 0 else "4",
                                     *(("--metrics-port", str(metrics_port)) if i == 0 else ())) for i in range(3)])
    try:
        # r0 runs a long render and may queue nothing more: every call to it is RESOURCE_EXHAUSTED.
        with DreamClient(replicas[0].target) as direct:
            long = direct.render_dream(noise=(256, 256), model="tiny", octaves=1, steps=1000, timeout=120)
            assert next(long).server_id == "r0"
            with pytest.raises(DreamError) as refused:
                _served_by(direct)
            assert refused.value.code.name == "RESOURCE_EXHAUSTED"
            with LocalDns("dreamd.test", ADDRESSES) as dns, \
                    DreamClient(f"dns://127.0.0.1:{dns.port}/dreamd.test:{port}") as client:
                sequential = [_served_by(client) for _ in range(9)]
                concurrent: list[str | Exception] = []

                def one() -> None:
                    try:
                        concurrent.append(_served_by(client, steps=3))
                    except Exception as exc:  # collected: the assertion below names it
                        concurrent.append(exc)

                threads = [threading.Thread(target=one) for _ in range(2)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(60)
            long.close()  # the SDK cancels the call, and the render stops
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    finally:
        for r in replicas:
            r.stop()
    # None failed while r1 and r2 had room, and r0 served none of them.
    assert set(sequential) == {"r1", "r2"}, sequential
    assert len(concurrent) == 2 and all(x in ("r1", "r2") for x in concurrent), concurrent
    # Round-robin did send first attempts to the full replica (beyond the direct call's refusal).
    refused = re.search(r'dreamrender_requests_total\{code="RESOURCE_EXHAUSTED",rpc="RenderDream"\} (\d+)', metrics)
    assert refused and int(refused.group(1)) >= 3, metrics
