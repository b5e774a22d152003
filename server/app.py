"""`dreamd`: build and run the gRPC server."""
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
from typing import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dreamrender.models import ModelStore, WeightsError, pull
from dreamrender.v1 import dreamrender_pb2 as pb
from dreamrender.v1 import dreamrender_pb2_grpc as pb_grpc

from ._common import ServerShuttingDown, resolve_device
from ._evaluator import Evaluator
from ._interceptor import ErrorInterceptor
from ._jobs import Scheduler
from ._memory import keep_heap
from ._metrics import Metrics
from ._security import TokenAuthInterceptor, load_tokens, server_credentials
from ._service import DreamRenderServicer, Limits, ModelCache

__all__ = ["ServerConfig", "create_server", "serve", "shutdown", "main"]

log = logging.getLogger("dreamrender.server")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DreamRenderService"].full_name


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Everything `dreamd` can be told. `listen` may end in :0 for a free port."""

    listen: str = "127.0.0.1:50051"
    device: str = "auto"
    models_dir: str | None = None  # default: $DREAMRENDER_MODELS or ~/.cache/dreamrender/models
    max_queue: int = 16
    max_side: int = 4096
    max_input_pixels: int = 64_000_000
    max_message_bytes: int = 64 * 1024 * 1024
    pull: tuple[str, ...] = ()  # models whose weights are fetched at start
    server_id: str = dataclasses.field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    default_dream_model: str = "vgg16"
    default_style_model: str = "vgg16"
    torch_threads: int = 0  # 0: torch's default
    evaluator: bool = True  # score checkpoints with onnxruntime off the render loop
    evaluator_threads: int = 1  # onnxruntime intra-op threads (leave the cores to torch)
    metrics_port: int | None = None  # Prometheus /metrics on this port (0: any free); None: off
    metrics_addr: str = "0.0.0.0"
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None  # with it, clients need a certificate it signed (mTLS)
    auth_token_file: str | None = None  # one bearer token per line; health stays open
    keep_heap: bool = True  # glibc keeps freed memory during a job (fewer page faults; see _memory)


def create_server(config: ServerConfig) -> tuple[grpc.aio.Server, int]:
    """Build the server (call inside a running event loop); returns it unstarted and its bound port."""
    import torch

    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    if config.keep_heap:
        keep_heap()
    store = ModelStore(config.models_dir)
    for name in config.pull:
        pull(name, store, progress=lambda msg: log.info("%s", msg))
    device = resolve_device(config.device)
    metrics = Metrics() if config.metrics_port is not None else None
    cache = ModelCache(store, device, metrics)
    scheduler = Scheduler(str(device), max_queue=config.max_queue)
    if metrics is not None:
        metrics.track_scheduler(str(device), lambda: scheduler.queue_depth, lambda: scheduler.active)
    options = [("grpc.max_send_message_length", config.max_message_bytes),
               ("grpc.max_receive_message_length", config.max_message_bytes)]
    interceptors: list[grpc.aio.ServerInterceptor] = [ErrorInterceptor(metrics)]
    if config.auth_token_file:
        interceptors.append(TokenAuthInterceptor(load_tokens(config.auth_token_file)))
    server = grpc.aio.server(interceptors=interceptors, options=options)
    evaluator = Evaluator(store, threads=config.evaluator_threads, enabled=config.evaluator)
    servicer = DreamRenderServicer(cache=cache, scheduler=scheduler, server_id=config.server_id, evaluator=evaluator,
                                   limits=Limits(config.max_input_pixels, config.max_side),
                                   default_dream_model=config.default_dream_model,
                                   default_style_model=config.default_style_model, metrics=metrics)
    pb_grpc.add_DreamRenderServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    if config.tls_cert or config.tls_key:
        if not (config.tls_cert and config.tls_key):
            raise ValueError("TLS needs both --tls-cert and --tls-key")
        port = server.add_secure_port(config.listen, server_credentials(config.tls_cert, config.tls_key,
                                                                        config.tls_client_ca))
    else:
        port = server.add_insecure_port(config.listen)
    if port == 0:
        raise OSError(f"cannot listen on {config.listen}")
    metrics_port = metrics.serve(config.metrics_port, config.metrics_addr) if metrics is not None else None
    server.dreamrender = {"health": health_servicer, "scheduler": scheduler, "servicer": servicer,  # type: ignore[attr-defined]
                          "evaluator": evaluator, "metrics": metrics, "metrics_port": metrics_port}  # type: ignore[attr-defined]
    log.info("dreamd on port %d, device %s, models in %s", port, device, store.root)
    return server, port


async def mark_serving(server: grpc.aio.Server) -> None:
    health_servicer = server.dreamrender["health"]  # type: ignore[attr-defined]
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


async def serve(config: ServerConfig, *, grace: float = 30.0) -> None:
    """Run until SIGTERM/SIGINT; then stop taking calls and give running jobs `grace` seconds."""
    server, port = create_server(config)
    await server.start()
    await mark_serving(server)
    print(f"dreamd listening on {config.listen.rsplit(':', 1)[0]}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await shutdown(server, grace)


async def shutdown(server: grpc.aio.Server, grace: float) -> None:
    """Graceful stop: health NOT_SERVING, new calls UNAVAILABLE, running jobs get `grace` seconds,
    then whatever still runs or waits ends with UNAVAILABLE ("server shutting down")."""
    extras = server.dreamrender  # type: ignore[attr-defined]
    log.info("shutting down (grace %.0f s)", grace)
    await extras["health"].enter_graceful_shutdown()
    # Stop accepting calls now, but keep the running streams open a little past the grace so
    # they receive our status rather than a transport error.
    stopping = asyncio.ensure_future(server.stop(grace + 5))
    scheduler = extras["scheduler"]
    if not await scheduler.drain(grace):
        log.warning("grace period over: stopping the remaining jobs")
        scheduler.abort_all(ServerShuttingDown("server shutting down: the render was stopped; retry on another replica"))
        await scheduler.drain(5)
    await stopping
    await scheduler.close()
    extras["evaluator"].close()
    if extras["metrics"] is not None:
        extras["metrics"].close()


def _parser() -> argparse.ArgumentParser:
    d = ServerConfig()
    p = argparse.ArgumentParser(prog="dreamd", description="Run the dreamrender gRPC server.")
    p.add_argument("--listen", default=d.listen, help=f"HOST:PORT to listen on (default {d.listen}; port 0: any free)")
    p.add_argument("--device", default=d.device, help="auto (CUDA when present, else CPU), cpu, cuda, cuda:1 ...")
    p.add_argument("--models-dir", default=None, help="model store (default $DREAMRENDER_MODELS or ~/.cache/dreamrender/models)")
    p.add_argument("--max-queue", type=int, default=d.max_queue, help=f"jobs that may wait per device (default {d.max_queue})")
    p.add_argument("--max-side", type=int, default=d.max_side, help=f"longest output side in pixels (default {d.max_side})")
    p.add_argument("--pull", action="append", default=[], metavar="MODEL", help="fetch this model's weights at start (repeatable)")
    p.add_argument("--grace", type=float, default=30.0, help="seconds running jobs get to finish on SIGTERM (default 30)")
    p.add_argument("--torch-threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-keep-heap", action="store_true",
                   help="leave glibc's malloc settings alone (by default freed memory is kept for reuse "
                        "during a job and handed back between jobs: renders page-fault less)")
    p.add_argument("--no-evaluator", action="store_true", help="do not score checkpoints with onnxruntime")
    p.add_argument("--evaluator-threads", type=int, default=d.evaluator_threads,
                   help=f"onnxruntime threads of the checkpoint evaluator (default {d.evaluator_threads})")
    p.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port (off by default)")
    p.add_argument("--tls-cert", help="PEM certificate chain: serve TLS")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--tls-client-ca", help="PEM CA: require client certificates it signed (mTLS)")
    p.add_argument("--auth-token-file", help="file with bearer tokens, one per line: calls without one get UNAUTHENTICATED")
    p.add_argument("--max-message-mb", type=int, default=d.max_message_bytes >> 20,
                   help=f"largest gRPC message in MiB, each way (default {d.max_message_bytes >> 20})")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    p.add_argument("--log-format", choices=("text", "json"), default="text", help="log lines as text or JSON objects")
    return p


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, with the job fields (job_id, rpc, peer, status, duration) when present."""

    FIELDS = ("job_id", "rpc", "peer", "status", "duration")

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
    """Entry point of `dreamd`."""
    args = _parser().parse_args(argv)
    _setup_logging(args.log_level, args.log_format)
    config = ServerConfig(listen=args.listen, device=args.device,
                          models_dir=str(Path(args.models_dir).expanduser()) if args.models_dir else None,
                          max_queue=args.max_queue, max_side=args.max_side, pull=tuple(args.pull),
                          torch_threads=args.torch_threads, evaluator=not args.no_evaluator,
                          evaluator_threads=args.evaluator_threads, metrics_port=args.metrics_port,
                          tls_cert=args.tls_cert, tls_key=args.tls_key, tls_client_ca=args.tls_client_ca,
                          auth_token_file=args.auth_token_file, max_message_bytes=args.max_message_mb << 20,
                          keep_heap=not args.no_keep_heap)
    try:
        asyncio.run(serve(config, grace=args.grace))
    except (WeightsError, OSError, ValueError) as exc:
        print(f"dreamd: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
