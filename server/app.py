"""`dreamd`: build and run the gRPC server. Its flags are derived from `ServerConfig`."""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dreamrender.models import ModelStore, WeightsError, pull
from dreamrender.settings import MAX_MESSAGE_MB, DreamSettings, StyleSettings, default_of
from dreamrender.v1 import dreamrender_pb2 as pb
from dreamrender.v1 import dreamrender_pb2_grpc as pb_grpc

from ._interceptor import ErrorInterceptor, ParseGuard, quiet_lost_client_errors
from ._metrics import Metrics
from ._security import TokenAuthInterceptor, load_tokens, server_credentials
from .engine.runtime import ServerShuttingDown, resolve_device
from .engine.sizing import MiB
from .evaluator import Evaluator
from .jobs import JobStore, open_store
from .memory import freeze_startup_objects, keep_heap, machine_memory, thaw_startup_objects
from .datasets import DataLimits
from .requests import Limits, RequestReader
from .scheduler import LaneLimits, Scheduler
from .servicer import DreamRenderServicer, ModelCache

__all__ = ["ServerConfig", "Server", "create_server", "serve", "main"]

log = logging.getLogger("dreamrender.server")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DreamRenderService"].full_name


def _cfg(default: Any, help: str, *, type: type | None = None, metavar: str | None = None,
         factory: Any = None) -> Any:
    """A ServerConfig field; its metadata makes dreamd's flag (bools with a True default become --no-NAME)."""
    meta = {"help": help, "type": type, "metavar": metavar}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _server_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Everything `dreamd` can be told; each field is one dreamd flag (`--max-queue` for max_queue)."""

    listen: str = _cfg("127.0.0.1:50051", "HOST:PORT to listen on (port 0: any free)")
    device: str = _cfg("auto", "auto (CUDA when present, else CPU), cpu, cuda, cuda:1 ...")
    models_dir: str | None = _cfg(None, "model store (default: $DREAMRENDER_MODELS or ~/.cache/dreamrender/models)",
                                  type=str, metavar="DIR")
    max_queue: int = _cfg(16, "jobs that may wait per device")
    max_jobs_per_caller: int = _cfg(4, "running plus waiting jobs one caller may have (the caller is its token when "
                                       "tokens are on, else its peer address); waiting callers are served in turn "
                                       "(0: no cap)")
    short_max_queue: int = _cfg(64, "short jobs (feed-forward paintings, samples) that may wait per device; they have "
                                    "their own lane, which runs beside long renders (#26)")
    short_jobs_per_caller: int = _cfg(16, "running plus waiting short jobs one caller may have (0: no cap)")
    short_jobs: int = _cfg(4, "short jobs that run at once per device: onnxruntime runs overlap each other's serial "
                              "parts and the others' decoding and encoding (on 2 cores, 4 served 17%% more paintings "
                              "a second than 2 at 4 callers; bench/bench_lanes.py)")
    short_share: float = _cfg(0.25, "on a CPU, the most of the time short jobs may take while a long job runs: "
                                    "the long job pauses at its next layer while one runs, so it slows down by at "
                                    "most 1 / (1 - share) (0: no pausing; the lanes then share the cores freely)",
                              type=float)
    short_burst: float = _cfg(2.0, "seconds of short work that start at once on a busy CPU before --short-share "
                                   "paces them", type=float)
    ff_max_batch: int = _cfg(1, "feed-forward runs (presets, samples) that arrive together for the same network "
                                "and size join one onnxruntime batch of up to this many (1: off; see the README "
                                "for when it helps)")
    ff_max_wait_ms: float = _cfg(5.0, "milliseconds the first run of a batch waits for others", type=float)
    max_side: int = _cfg(4096, "longest side of any output in pixels")
    max_input_pixels: int = _cfg(64_000_000, "largest input image in pixels, read from its header (decompression bombs)")
    max_queued_pixels: int = _cfg(100_000_000, "decoded image pixels waiting jobs may hold together (about 12 bytes "
                                               "each); past it RESOURCE_EXHAUSTED (0: no budget)")
    max_work: float = _cfg(20_000.0, "largest render in Mpx-steps (pixels x steps over octaves or scales; a 512 px "
                                     "style of 3 scales x 100 iterations is about 35)", type=float)
    max_job_memory: int = _cfg(0, "MB one job may need at its peak, estimated from its settings before it starts; "
                                  "past it RESOURCE_EXHAUSTED naming both figures (0: 80%% of the machine's or "
                                  "container's memory)")
    max_frames: int = _cfg(300, "frames one zoom animation or latent walk may have (zoom_frames, walk)")
    max_train_images: int = _cfg(20_000, "images one TrainGenerator request may bring (counted from an archive's "
                                         "directory before any is read)")
    max_train_mb: int = _cfg(512, "MiB an archive's images may take uncompressed (from its directory or headers)")
    max_message_mb: int = _cfg(MAX_MESSAGE_MB, "largest gRPC message in MiB, each way")
    pull: tuple[str, ...] = _cfg((), "fetch this model's weights at start (repeatable)", metavar="MODEL")
    rpc_deadline: float = _cfg(300.0, "seconds a unary call (Evaluate, GetJob, ListJobs, CancelJob, ListModels) may take "
                                      "here before DEADLINE_EXCEEDED, whatever deadline its caller set (0: none); "
                                      "streaming renders answer at once and send progress instead", type=float)
    grace: float = _cfg(30.0, "seconds running jobs get to finish on SIGTERM")
    keepalive: float = _cfg(10.0, "seconds between HTTP/2 pings to each client; a client that misses one for "
                                  "--keepalive-timeout is gone, and its render stops (0: no pings)")
    keepalive_timeout: float = _cfg(10.0, "seconds a keepalive ping may go unanswered")
    health_listen: str | None = _cfg(None, "also serve the health service alone, in plaintext, at HOST:PORT (for "
                                           "kubelet's gRPC probe when the main port has TLS; it tells SERVING or "
                                           "NOT_SERVING and nothing else)", type=str, metavar="HOST:PORT")
    max_connection_age: float = _cfg(300.0, "seconds after which a client connection is asked to go away (GOAWAY), "
                                            "so that long-lived clients re-resolve and find replicas added since "
                                            "(0: never)", type=float)
    max_connection_age_grace: float = _cfg(3600.0, "seconds the calls on such a connection may still run; a render "
                                                   "longer than this is cut off (a detached job runs on; watch it "
                                                   "again)", type=float)
    server_id: str = _cfg(None, "name of this replica in Accepted events and the job store (default: HOST:PID)",
                          type=str, factory=_server_id)
    default_dream_model: str = _cfg(default_of(DreamSettings, "model"), "model of dreams that name none")
    default_style_model: str = _cfg(default_of(StyleSettings, "model"), "model of style transfers that name none")
    torch_threads: int = _cfg(0, "torch CPU threads (0: torch's choice)")
    evaluator: bool = _cfg(True, "score checkpoints with onnxruntime off the render loop")
    evaluator_threads: int = _cfg(1, "onnxruntime threads of the checkpoint evaluator (leave the cores to torch)")
    metrics_port: int | None = _cfg(None, "serve Prometheus metrics on this port (0: any free; default off)", type=int)
    metrics_address: str = _cfg("127.0.0.1", "address the metrics endpoint binds (0.0.0.0 for a scraper on another "
                                             "host; --metrics-addr is a deprecated alias)")
    tls_cert: str | None = _cfg(None, "PEM certificate chain: serve TLS", type=str)
    tls_key: str | None = _cfg(None, "PEM private key of --tls-cert", type=str)
    tls_client_ca: str | None = _cfg(None, "PEM CA: require client certificates it signed (mTLS)", type=str)
    auth_token_file: str | None = _cfg(None, "file with bearer tokens, one per line: calls without one get "
                                             "UNAUTHENTICATED (health stays open)", type=str)
    data_dir: str | None = _cfg(None, "where the SQLite job store keeps jobs and results (default: a jobs folder "
                                      "beside the model store)", type=str, metavar="DIR")
    job_store: str = _cfg("sqlite", "sqlite (in --data-dir; one dreamd per directory) or redis://HOST:PORT/DB "
                                    "(replicas sharing it see each other's jobs)", metavar="URL")
    job_ttl: float = _cfg(86400.0, "seconds finished jobs and their results are kept", type=float)
    job_heartbeat: float = _cfg(10.0, "seconds between this replica's heartbeats in the job store; the unfinished "
                                      "detached jobs of a replica silent for 3 of them are taken over", type=float)
    job_store_max_mb: int = _cfg(1024, "MiB the job store may hold; past it new detached jobs get "
                                       "RESOURCE_EXHAUSTED (finished results are never dropped early; 0: no cap)")
    keep_heap: bool = _cfg(True, "glibc keeps freed memory for reuse during a job and hands it back between jobs "
                                 "(renders page-fault less; see dreamrender.server.memory)")

    @property
    def max_message_bytes(self) -> int:
        return self.max_message_mb << 20


@dataclasses.dataclass
class Server:
    """What `create_server` built: the gRPC server (not yet started), its port and its parts."""

    grpc_server: grpc.aio.Server
    port: int
    config: ServerConfig
    health: Any
    scheduler: Scheduler
    servicer: DreamRenderServicer
    evaluator: Evaluator
    metrics: Metrics | None
    metrics_port: int | None
    store: JobStore
    health_server: grpc.aio.Server | None = None  # --health-listen's plaintext listener
    health_port: int | None = None
    upkeep: "asyncio.Task | None" = None

    async def start(self) -> None:
        """Start serving, report SERVING to the health service, and start the job store's upkeep
        (which first takes over the jobs an earlier run left unfinished)."""
        await self.grpc_server.start()
        if self.health_server is not None:
            await self.health_server.start()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.upkeep = asyncio.ensure_future(self.servicer.keep_jobs(self.config.job_heartbeat))

    async def shutdown(self, grace: float | None = None) -> None:
        """Graceful stop: health NOT_SERVING, new calls UNAVAILABLE, running jobs get `grace` seconds
        (default: the config's), then whatever still runs or waits ends with UNAVAILABLE."""
        grace = self.config.grace if grace is None else grace
        log.info("shutting down (grace %.0f s)", grace)
        if self.upkeep is not None:  # take over no jobs while draining; keep beating so none are taken from us
            self.upkeep.cancel()
            self.upkeep = asyncio.ensure_future(self._beat())
        await self.health.enter_graceful_shutdown()
        # Stop accepting calls now, but keep the running streams open a little past the grace so
        # they receive our status rather than a transport error.
        stopping = asyncio.ensure_future(self.grpc_server.stop(grace + 5))
        if not await self.scheduler.drain(grace):
            log.warning("grace period over: stopping the remaining jobs")
            self.scheduler.abort_all(lambda job: ServerShuttingDown(
                f"server shutting down: job {job.id} was stopped; its best image so far is kept "
                f"(GetJob {job.id}), and a detached job runs again when the server is back"))
            await self.scheduler.drain(5)
        await stopping
        await self.close()

    async def close(self) -> None:
        """Stop at once (no grace) and release the workers and the metrics endpoint."""
        if self.upkeep is not None:
            self.upkeep.cancel()
        await self.grpc_server.stop(0)
        if self.health_server is not None:  # only now, after the drain: probes saw NOT_SERVING meanwhile
            await self.health_server.stop(0)
        await self.scheduler.close()
        try:  # gone: a restart (or another replica) may take over our unfinished jobs at once
            self.store.beat(self.config.server_id, 0)
        except Exception:
            log.warning("could not clear this server's heartbeat in the job store")
        self.store.close()
        self.servicer.decoder.shutdown(wait=False, cancel_futures=True)
        self.evaluator.close()
        if self.metrics is not None:
            self.metrics.close()
        thaw_startup_objects()

    async def _beat(self) -> None:
        every = self.config.job_heartbeat
        while True:
            await asyncio.to_thread(self.store.beat, self.config.server_id, 3 * every)
            await asyncio.sleep(every)


def _bind(server: grpc.aio.Server, config: ServerConfig) -> int:
    if config.tls_cert or config.tls_key:
        if not (config.tls_cert and config.tls_key):
            raise ValueError("TLS needs both --tls-cert and --tls-key")
        creds = server_credentials(config.tls_cert, config.tls_key, config.tls_client_ca)
        return _listen(server, config.listen, creds)
    return _listen(server, config.listen)


def _listen(server: grpc.aio.Server, address: str, creds: grpc.ServerCredentials | None = None) -> int:
    """The port `server` got at `address` (TLS with `creds`); OSError when it got none."""
    port = server.add_secure_port(address, creds) if creds is not None else server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return port


def _health_listener(servicer: Any, config: ServerConfig) -> tuple[grpc.aio.Server | None, int | None]:
    """The plaintext health-only server of --health-listen (same health states as the main port).

    kubelet's gRPC probe cannot speak TLS; without this, a TLS pod's probes had to run `dreamctl
    health` in the container, a Python process every few seconds (bench/bench_probe.py)."""
    if not config.health_listen:
        return None, None
    server = grpc.aio.server(interceptors=[ParseGuard()], options=[("grpc.max_receive_message_length", 1 << 16),
                                                                   ("grpc.compression_enabled_algorithms_bitset", 1)])
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return server, _listen(server, config.health_listen)


def _grpc_options(config: ServerConfig) -> list[tuple[str, int]]:
    options = [("grpc.max_send_message_length", config.max_message_bytes),
               ("grpc.max_receive_message_length", config.max_message_bytes),
               # Identity only: our requests are PNGs and JPEGs, which deflate cannot shrink, and
               # grpc inflated a compressed request in full before its size check (200 MiB of
               # zeros in 200 KB stalled health 400-610 ms per call, #28 D17). A compressed
               # request now gets UNIMPLEMENTED without being inflated.
               ("grpc.compression_enabled_algorithms_bitset", 1)]
    if config.keepalive > 0:
        # A peer that vanished without closing (or a stopped process) answers no ping: grpc then
        # ends its calls, and the render stops within about keepalive + timeout seconds.
        options += [("grpc.keepalive_time_ms", int(config.keepalive * 1000)),
                    ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout * 1000)),
                    ("grpc.http2.max_pings_without_data", 0)]
    if config.max_connection_age > 0:
        # round_robin channels re-resolve their target only when a connection ends: without an age
        # a client connected before the autoscaler added pods would never send them a call.
        options += [("grpc.max_connection_age_ms", int(config.max_connection_age * 1000)),
                    ("grpc.max_connection_age_grace_ms", int(config.max_connection_age_grace * 1000))]
    return options


def create_server(config: ServerConfig) -> Server:
    """Build the server (call inside a running event loop); returns it unstarted, with its bound port."""
    import torch

    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    if config.keep_heap:
        keep_heap()
    store = ModelStore(Path(config.models_dir).expanduser() if config.models_dir else None)
    for name in config.pull:
        pull(name, store, progress=lambda msg: log.info("%s", msg))
    device = resolve_device(config.device)
    metrics = Metrics() if config.metrics_port is not None else None
    max_job_memory = (config.max_job_memory or int(0.8 * machine_memory() / MiB)) * MiB
    scheduler = _scheduler(config, str(device), max_job_memory, metrics)
    quiet_lost_client_errors()
    interceptors: list[grpc.aio.ServerInterceptor] = [ErrorInterceptor(metrics, config.max_message_bytes,
                                                                                config.rpc_deadline)]
    if config.auth_token_file:
        interceptors.append(TokenAuthInterceptor(load_tokens(config.auth_token_file)))
    server = grpc.aio.server(interceptors=interceptors, options=_grpc_options(config))
    evaluator = Evaluator(store, threads=config.evaluator_threads, enabled=config.evaluator)
    limits = Limits(config.max_input_pixels, config.max_side, config.max_work,
                    max_job_memory=max_job_memory,
                    evaluator=config.evaluator, max_frames=config.max_frames,
                    data=DataLimits(config.max_train_images, config.max_train_mb * MiB, config.max_input_pixels))
    requests = RequestReader(limits=limits, store=store,
                             default_dream_model=config.default_dream_model,
                             default_style_model=config.default_style_model)
    jobs = open_store(config.job_store, data_dir=config.data_dir or str(store.root.parent / "jobs"),
                      ttl=config.job_ttl, max_bytes=config.job_store_max_mb * MiB)
    cache = ModelCache(store, device, metrics, max_batch=config.ff_max_batch, max_wait=config.ff_max_wait_ms / 1000)
    servicer = DreamRenderServicer(cache=cache, scheduler=scheduler, requests=requests,
                                   server_id=config.server_id, evaluator=evaluator, store=jobs, metrics=metrics,
                                   callers_by_token=bool(config.auth_token_file),
                                   max_message_bytes=config.max_message_bytes)
    pb_grpc.add_DreamRenderServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = _bind(server, config)
    metrics_port = metrics.serve(config.metrics_port, config.metrics_address) if metrics is not None else None
    log.info("dreamd on port %d, device %s, models in %s", port, device, store.root)
    health_server, health_port = _health_listener(health_servicer, config)
    if health_port is not None:
        log.info("health service alone, in plaintext, on port %d", health_port)
    freeze_startup_objects()
    return Server(server, port, config, health_servicer, scheduler, servicer, evaluator, metrics, metrics_port, jobs,
                  health_server, health_port)


def _scheduler(config: ServerConfig, device: str, max_job_memory: int, metrics: Metrics | None) -> Scheduler:
    """The device's scheduler with its two lanes, and their gauges."""
    scheduler = Scheduler(device, max_queue=config.max_queue, max_queued_pixels=config.max_queued_pixels,
                          max_jobs_per_caller=config.max_jobs_per_caller, max_memory=max_job_memory,
                          # Batching needs as many short jobs running as a batch holds.
                          short=LaneLimits(config.short_max_queue, config.short_jobs_per_caller,
                                           max(config.short_jobs, config.ff_max_batch)),
                          short_share=config.short_share, short_burst=config.short_burst)
    if metrics is not None:
        for name, lane in scheduler.lanes.items():
            metrics.track_lane(device, name, lambda lane=lane: len(lane.waiting), lambda lane=lane: lane.active)
        if scheduler.share is not None:
            share = scheduler.share
            metrics.lane_paused.labels(device).set_function(lambda: share.paused_seconds)
    return scheduler


async def serve(config: ServerConfig) -> None:
    """Run until SIGTERM/SIGINT; then stop taking calls and give running jobs `config.grace` seconds."""
    built = create_server(config)
    await built.start()
    print(f"dreamd listening on {config.listen.rsplit(':', 1)[0]}:{built.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await built.shutdown()


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per ServerConfig field, help and default taken from the field. Flags left out of the
    command line are absent from the namespace (SUPPRESS), so the dataclass default applies."""
    for f in dataclasses.fields(ServerConfig):
        meta, flag = f.metadata, "--" + f.name.replace("_", "-")
        default = f.default
        shown = "" if default is None or default is dataclasses.MISSING else f" (default: {default})"
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "metavar": meta.get("metavar")}
        if isinstance(default, bool):
            flag = f"--no-{f.name.replace('_', '-')}" if default else flag
            kw = {"dest": f.name, "default": argparse.SUPPRESS, "action": "store_false" if default else "store_true"}
            shown = " (on by default; this flag turns it off)" if default else " (off by default)"
        elif isinstance(default, tuple):
            kw["action"], shown = "append", ""
        else:
            kw["type"] = meta.get("type") or type(default)
        p.add_argument(flag, help=meta["help"] + shown, **kw)


class _Deprecated(argparse.Action):
    """Stores like its new name and warns that the old name goes away."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        new = "--" + self.dest.replace("_", "-")
        print(f"dreamd: {option_string} is deprecated; use {new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dreamd", description="Run the dreamrender gRPC server.")
    _add_config_flags(p)
    # Renamed flags keep working, with a warning when used (see main).
    p.add_argument("--metrics-addr", dest="metrics_address", default=argparse.SUPPRESS, action=_Deprecated,
                   help=argparse.SUPPRESS)
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    p.add_argument("--log-format", choices=("text", "json"), default="text", help="log lines as text or JSON objects")
    return p


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, with the job fields (job_id, rpc, peer, status, duration) when present."""

    FIELDS = ("job_id", "rpc", "peer", "status", "duration", "request_id")

    def format(self, record: logging.LogRecord) -> str:
        import json

        out = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
               "message": record.getMessage()}
        out.update({k: getattr(record, k) for k in self.FIELDS if hasattr(record, k)})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def _setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `dreamd`: parse the flags, set up logging, serve."""
    args = vars(_parser().parse_args(argv))
    _setup_logging(args.pop("log_level"), args.pop("log_format"))
    if "pull" in args:
        args["pull"] = tuple(args["pull"])
    try:
        asyncio.run(serve(ServerConfig(**args)))
    except (WeightsError, OSError, ValueError) as exc:
        print(f"dreamd: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
