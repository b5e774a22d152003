"""Prometheus metrics (`dreamd --metrics-port P`), all prefixed `dreamrender_`.

Each server has its own registry, so several servers (tests, one process per GPU) never
share counters.
"""
from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = ["Metrics"]

_DURATION_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class Metrics:
    """The service's metrics; `serve(port)` exposes them over HTTP at /metrics."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("dreamrender_requests", "RPCs by method and final status code",
                                ["rpc", "code"], registry=r)
        self.render_seconds = Histogram("dreamrender_render_seconds", "Wall time of renders that ran",
                                        ["rpc", "lane"], buckets=_DURATION_BUCKETS, registry=r)
        self.queue_wait = Histogram("dreamrender_queue_wait_seconds", "Time jobs waited before starting",
                                    ["lane"], buckets=_DURATION_BUCKETS, registry=r)
        self.queue_depth = Gauge("dreamrender_queue_depth", "Jobs waiting", ["device", "lane"], registry=r)
        self.active_jobs = Gauge("dreamrender_active_jobs", "Jobs running", ["device", "lane"], registry=r)
        self.lane_paused = Gauge("dreamrender_long_lane_paused_seconds", "Time the long lane paused for short work "
                                 "(CPU time-sharing)", ["device"], registry=r)
        self.iterations = Counter("dreamrender_iterations", "Optimiser/gradient steps done", ["rpc"], registry=r)
        self.iterations_per_second = Gauge("dreamrender_iterations_per_second",
                                           "Steps per second of the most recent progress", ["rpc"], registry=r)
        self.model_load_seconds = Gauge("dreamrender_model_load_seconds", "Time the last load of a model took",
                                        ["model"], registry=r)
        self._http = None

    def track_lane(self, device: str, lane: str, depth: Callable[[], float], active: Callable[[], float]) -> None:
        self.queue_depth.labels(device, lane).set_function(depth)
        self.active_jobs.labels(device, lane).set_function(active)

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Start the /metrics HTTP endpoint; returns the bound port (0 picks a free one)."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        self._http = server
        return server.server_address[1]

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http = None
