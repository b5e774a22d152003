"""dreamweb: an HTTP gateway in front of dreamd for browsers, and the page that uses it.

A *client* of dreamd through the SDK (it imports no engine, and dreamd stays pure gRPC):

    POST /api/renders                 multipart form -> 202 {"job_id"}; the job is detached
    GET  /api/jobs                    the caller's jobs, newest first
    GET  /api/jobs/{id}               one job's state, progress and last frame
    GET  /api/jobs/{id}/events        Server-Sent Events (WatchJob): progress, frames, the result
    POST /api/jobs/{id}/cancel        CancelJob
    GET  /api/jobs/{id}/result        the result image (?download=1 to save it)
    GET  /api/options                 the settings the forms take, and dreamd's models and presets
    GET  /healthz                     the gateway and dreamd's health

The caller's `Authorization: Bearer` header goes to dreamd as it is (else --token-file's token),
so dreamd decides whose jobs are whose; the gateway never logs it.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

import grpc

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dreamrender.client import AsyncDreamClient, DreamError
from dreamrender.v1 import dreamrender_pb2 as pb

from ._limits import UploadLimit, UploadTooLarge, too_large_body
from .config import WebConfig, add_flags, config_from_args, read_token, split_listen
from .events import error_json, event_payload, http_status, job_json, sse
from .forms import FormError, options, render_call

__all__ = ["create_app", "serve", "main"]

log = logging.getLogger("dreamrender.web")
STATIC = Path(__file__).parent / "static"
# The page loads nothing from elsewhere (no CDN); frames arrive as data: URLs, results as blob: URLs.
_PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
                                            "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
                 "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


def _error(err: Exception) -> JSONResponse:
    return JSONResponse(error_json(err), status_code=http_status(err))


def _metadata(request: Request) -> tuple[tuple[str, str], ...]:
    """The caller's bearer token, else the gateway's own, as dreamd's call metadata."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    token = token or request.app.state.token
    return (("authorization", f"Bearer {token}"),) if token else ()


def _client(request: Request) -> AsyncDreamClient:
    return request.app.state.client


async def _read_form(request: Request, config: WebConfig) -> tuple[dict[str, list[str]], dict[str, list[bytes]]]:
    """The form's text fields and files by name (empty file inputs left out)."""
    fields: dict[str, list[str]] = {}
    files: dict[str, list[bytes]] = {}
    async with request.form(max_files=config.max_files, max_fields=200) as form:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                if data:
                    files.setdefault(name, []).append(data)
            else:
                fields.setdefault(name, []).append(value)
    return fields, files


async def start_render(request: Request) -> Response:
    config: WebConfig = request.app.state.config
    try:
        fields, files = await _read_form(request, config)
    except UploadTooLarge as err:
        return JSONResponse(too_large_body(err), status_code=413)
    call = render_call(fields, files)
    stream = getattr(_client(request), call.method)(*call.args, timeout=config.render_timeout,
                                                     metadata=_metadata(request), **call.kwargs)
    try:
        accepted = await anext(stream)  # dreamd checks the request before it accepts it
    finally:
        await stream.aclose()  # the job is detached: it goes on without this call
    log.info("started %s job %s", call.kind, accepted.job_id)
    return JSONResponse({"job_id": accepted.job_id, "kind": call.kind, "queue_position": accepted.queue_position,
                         "events": f"api/jobs/{accepted.job_id}/events"}, status_code=202)


async def _pump(stream: AsyncIterator[Any], first: Any, job_id: str, queue: asyncio.Queue) -> None:
    """WatchJob's events, as SSE bytes, into `queue`; None ends it."""
    try:
        await queue.put(sse(*event_payload(first, job_id)))
        async for ev in stream:
            await queue.put(sse(*event_payload(ev, job_id)))
        await queue.put(sse("end", {"job_id": job_id}))
    except DreamError as err:
        await queue.put(sse("error", error_json(err)))
    finally:
        await queue.put(None)


async def job_events(request: Request) -> Response:
    """A job's events as Server-Sent Events: its current state first (so a reloaded page
    re-attaches), then each change, then `end` (or `error`, with dreamd's status)."""
    job_id = request.path_params["job_id"]
    keepalive = request.app.state.config.keepalive
    stream = _client(request).watch_job(job_id, metadata=_metadata(request))
    try:
        first = await anext(stream)  # an unknown (or another token's) job is a 404 here, not a stream
    except BaseException:
        await stream.aclose()
        raise

    async def body() -> AsyncIterator[bytes]:
        # Bounded: a page that stops reading holds WatchJob back rather than the gateway's memory
        # growing; WatchJob then sends the newest state when it is read again.
        queue: asyncio.Queue = asyncio.Queue(maxsize=32)
        task = asyncio.create_task(_pump(stream, first, job_id, queue))
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), keepalive)
                except asyncio.TimeoutError:
                    yield sse("")
                    continue
                if item is None:
                    return
                yield item
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await stream.aclose()

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def list_jobs(request: Request) -> Response:
    q = request.query_params
    size = q.get("page_size") or "20"
    if not size.isdigit():
        raise FormError("page_size", f"{size!r} is not a whole number", "1 to 1000")
    resp = await _client(request).list_jobs(state=q.get("state") or None, page_size=int(size),
                                            page_token=q.get("page_token", ""), metadata=_metadata(request))
    return JSONResponse({"jobs": [job_json(j) for j in resp.jobs], "next_page_token": resp.next_page_token})


async def get_job(request: Request) -> Response:
    job = await _client(request).get_job(request.path_params["job_id"], metadata=_metadata(request))
    return JSONResponse(job_json(job))


async def cancel_job(request: Request) -> Response:
    job = await _client(request).cancel_job(request.path_params["job_id"], metadata=_metadata(request))
    log.info("cancelled job %s", job.job_id)
    return JSONResponse(job_json(job))


async def job_result(request: Request) -> Response:
    client, md, job_id = _client(request), _metadata(request), request.path_params["job_id"]
    job = await client.get_job(job_id, metadata=md)
    if job.state != pb.JOB_STATE_SUCCEEDED:
        return JSONResponse(error_json(DreamError(grpc.StatusCode.FAILED_PRECONDITION, f"job {job_id} has no result: it is "
                                                  f"{job_json(job)['state']}")), status_code=409)
    image = job.result.image
    if job.image_in_chunks:  # too large for one GetJob answer: WatchJob sends it in chunks
        async for ev in client.watch_job(job_id, metadata=md):
            if isinstance(ev, pb.Result):
                image = ev.image
    headers = {"Cache-Control": "private, max-age=3600"}
    if request.query_params.get("download"):
        ext = _EXTENSIONS.get(image.media_type, "bin")
        headers["Content-Disposition"] = f'attachment; filename="dreamrender-{job_id}.{ext}"'
    return Response(image.data, media_type=image.media_type or "application/octet-stream", headers=headers)


async def get_options(request: Request) -> Response:
    catalog = await _client(request).catalog(metadata=_metadata(request))
    return JSONResponse(options(catalog))


async def health(request: Request) -> Response:
    try:
        status = await _client(request).health(timeout=5)
    except DreamError as err:
        return JSONResponse({"gateway": "SERVING", "dreamd": err.code.name}, status_code=503)
    return JSONResponse({"gateway": "SERVING", "dreamd": status}, status_code=200 if status == "SERVING" else 503)


async def index(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers=_PAGE_HEADERS)


async def _on_error(request: Request, exc: Exception) -> Response:
    """A DreamError (dreamd's status) or a ValueError (a form field) as the page's JSON error."""
    log.info("%s %s: %s", request.method, request.url.path, error_json(exc)["code"])
    return _error(exc)


def _tls(config: WebConfig) -> dict[str, Any]:
    """The SDK's TLS settings for dreamd (none: plaintext)."""
    if not (config.tls_ca or config.tls_cert):
        return {}
    return {"tls": True, "tls_ca": config.tls_ca or None, "tls_cert": config.tls_cert or None,
            "tls_key": config.tls_key or None, "tls_server_name": config.tls_server_name or None}


def create_app(config: WebConfig) -> Any:
    """The gateway's ASGI application (Starlette, inside the upload limit). Its dreamd client opens
    with the app's lifespan, on the server's event loop."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncDreamClient(config.dreamd, **_tls(config)) as client:
            app.state.client = client
            yield

    middleware = []
    if config.cors_origin:  # closed unless asked: no CORS headers at all
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(config.cors_origin),
                                     allow_methods=["GET", "POST"], allow_headers=["authorization", "content-type"]))
    routes = [Route("/", index), Route("/healthz", health), Route("/api/options", get_options),
              Route("/api/renders", start_render, methods=["POST"]), Route("/api/jobs", list_jobs),
              Route("/api/jobs/{job_id}", get_job), Route("/api/jobs/{job_id}/events", job_events),
              Route("/api/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
              Route("/api/jobs/{job_id}/result", job_result),
              Mount("/static", StaticFiles(directory=STATIC), name="static")]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={DreamError: _on_error, ValueError: _on_error})
    app.state.config = config
    app.state.token = read_token(config.token_file) if config.token_file else ""
    return UploadLimit(app, config.max_upload_bytes)


def _bind(listen: str) -> socket.socket:
    host, port = split_listen(listen)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def serve(config: WebConfig, *, log_level: str = "info") -> None:
    """Bind --listen, say where, and serve until stopped (SIGINT/SIGTERM)."""
    import uvicorn

    sock = _bind(config.listen)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    server = uvicorn.Server(uvicorn.Config(create_app(config), log_level=log_level.lower(), lifespan="on",
                                           timeout_graceful_shutdown=5, proxy_headers=False))
    print(f"dreamweb listening on http://{shown}:{port}/ (dreamd at {config.dreamd})", flush=True)
    server.run(sockets=[sock])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dreamweb", description="Serve the dreamrender page and its HTTP API, "
                                                             "a gateway to dreamd for browsers.")
    add_flags(p)
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = config_from_args(args)
        serve(config, log_level=args.log_level)
    except (ValueError, OSError) as err:
        print(f"dreamweb: {err}", flush=True)
        return 2
    return 0
