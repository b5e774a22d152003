"""The servicer: wires requests (checked by `requests`) to the scheduler, and engine events to responses."""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from typing import Any, AsyncIterator, Callable

import torch

from dreamrender.models import (FEED_FORWARD_MODELS, FeatureNet, ModelStore, get_model, is_available, list_specs,
                               weights_path)
from dreamrender.v1 import dreamrender_pb2 as pb
from dreamrender.v1 import dreamrender_pb2_grpc as pb_grpc

from ._interceptor import CallOutcome, ended_as, status_for
from ._security import caller_of
from .engine import native_bf16, render_dream, render_style
from .engine.feedforward import FeedForwardNets, feed_forward_image, free_size_model, onnx_session, render_feed_forward
from .engine.style import first_scale_side
from .engine.events import Accepted, Event, Progress
from .evaluator import Evaluator, style_terms
from .requests import RequestReader, result_format
from .responses import to_responses
from .scheduler import Job, Scheduler

__all__ = ["DreamRenderServicer", "ModelCache"]

log = logging.getLogger(__name__)
REQUEST_ID_KEY = "x-request-id"


class ModelCache:
    """Loaded networks per name on one device; loading happens in the worker thread."""

    def __init__(self, store: ModelStore, device: torch.device, metrics: Any = None) -> None:
        self.metrics = metrics
        self.store = store
        self.device = device
        self._nets: dict[str, FeatureNet] = {}
        self._feed_forward: dict[str, FeedForwardNets] = {}
        self._lock = threading.Lock()

    def feed_forward(self, which: str) -> FeedForwardNets:
        """onnxruntime sessions of the feed-forward networks `which` needs ("arbitrary" or "presets")."""
        with self._lock:
            if which not in self._feed_forward:
                started = time.perf_counter()
                names = FEED_FORWARD_MODELS[which]
                files = [weights_path(n, self.store).read_bytes() for n in names]
                if which == "arbitrary":
                    nets = FeedForwardNets(predict=onnx_session(files[0]),
                                           transform=onnx_session(free_size_model(files[1])))
                else:
                    nets = FeedForwardNets(multistyle=onnx_session(files[0]))
                self._feed_forward[which] = nets
                log.info("loaded feed-forward %s (%s) in %.2f s", which, ", ".join(names), time.perf_counter() - started)
            return self._feed_forward[which]

    def get(self, name: str) -> FeatureNet:
        with self._lock:
            if name not in self._nets:
                started = time.perf_counter()
                self._nets[name] = get_model(name, store=self.store, device=self.device)
                took = time.perf_counter() - started
                if self.metrics is not None:
                    self.metrics.model_load_seconds.labels(name).set(took)
                log.info("loaded model %s on %s in %.2f s", name, self.device, took)
            return self._nets[name]


class DreamRenderServicer(pb_grpc.DreamRenderServiceServicer):
    """Implements dreamrender.v1.DreamRenderService on top of the engines."""

    def __init__(self, *, cache: ModelCache, scheduler: Scheduler, requests: RequestReader, server_id: str,
                 evaluator: Evaluator, metrics: Any = None, callers_by_token: bool = False) -> None:
        self.metrics = metrics
        self.callers_by_token = callers_by_token
        self.cache = cache
        self.evaluator = evaluator
        self.scheduler = scheduler
        self.requests = requests
        self.server_id = server_id
        self.decoder = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="decode")

    async def _read(self, read: Callable[[Any], Any], request: Any) -> Any:
        """Check and decode a request in the decode threads, never on the event loop (an 8000x8000
        PNG takes seconds to decode, and health checks must answer meanwhile). Two at a time:
        that also bounds the memory that decoding in flight holds."""
        return await asyncio.get_running_loop().run_in_executor(self.decoder, read, request)

    async def _stream(self, body: Callable[[Callable[[Event], None], threading.Event], None],
                      response_type: type, context: Any, *, frame_format: str,
                      result_format: str, rpc: str, pixels: int = 0) -> AsyncIterator[Any]:
        def convert(e: Event) -> list[Any]:
            return to_responses(e, response_type, frame_format=frame_format, result_format=result_format)

        def run(emit: Callable[[Any], None], cancel: threading.Event) -> None:
            self._job_started(job)
            body(lambda e: [emit(r) for r in convert(self._observe_event(e, rpc))], cancel)

        # Read the peer now: touching the context after the call has ended can crash grpc's aio layer.
        peer = context.peer()
        # The caller's correlation id, when it sends one, goes into every log line of the job.
        metadata = context.invocation_metadata() or ()
        request_id = next((str(v) for k, v in metadata if k == REQUEST_ID_KEY), "")
        job = Job(run, lambda q: convert(q)[0], rpc, pixels=pixels,
                  caller=caller_of(metadata, peer, by_token=self.callers_by_token))
        position = self.scheduler.submit(job)
        log.info("job %s %s accepted at queue position %d (peer %s%s)", job.id, rpc, position, peer,
                 f", {REQUEST_ID_KEY} {request_id}" if request_id else "",
                 extra={"job_id": job.id, "rpc": rpc, "peer": peer, "request_id": request_id})
        yield convert(Accepted(job.id, position, self.server_id))[0]
        started = time.monotonic()
        status, call = "OK", CallOutcome(context)
        try:
            async for response in job.responses():
                call.saw(response)  # before the yield: see the interceptor's unary_stream
                yield response
        except BaseException as exc:
            # A caller that closes its stream right after the result got what it asked for: OK.
            if not call.delivered:
                status = status_for(exc)[0].name if isinstance(exc, Exception) else ended_as(call)
            raise
        finally:
            if not job.finished and not call.delivered:
                status = ended_as(call)
            self.scheduler.withdraw(job)  # no-op for a finished job
            elapsed = time.monotonic() - started
            if self.metrics is not None and job.started:
                self.metrics.render_seconds.labels(rpc).observe(elapsed)
            log.info("job %s %s ended: %s after %.2f s", job.id, rpc, status, elapsed,
                     extra={"job_id": job.id, "rpc": rpc, "peer": peer, "status": status,
                            "duration": round(elapsed, 3), "request_id": request_id})

    def _job_started(self, job: Job) -> None:
        if self.metrics is not None:
            self.metrics.queue_wait.observe(time.monotonic() - job.created)

    def _observe_event(self, event: Event, rpc: str) -> Event:
        """Count steps for the metrics as events flow out of the engine (worker thread)."""
        if self.metrics is not None and isinstance(event, Progress):
            self.metrics.iterations.labels(rpc).inc()
            if event.elapsed_seconds > 0:
                self.metrics.iterations_per_second.labels(rpc).set(event.step / event.elapsed_seconds)
        return event

    def _render(self, request: Any, context: Any, job: Any, response_type: type, rpc: str,
                body: Callable[[Callable[[Event], None], threading.Event], None]) -> AsyncIterator[Any]:
        return self._stream(body, response_type, context, frame_format=job.settings.preview.format,
                            result_format=result_format(request), rpc=rpc, pixels=job.pixels)

    # -- RPCs --------------------------------------------------------------------------
    async def RenderDream(self, request: pb.RenderDreamRequest, context: Any) -> AsyncIterator[pb.RenderDreamResponse]:
        job = await self._read(self.requests.dream, request)

        def body(sink: Callable[[Event], None], cancel: threading.Event) -> None:
            render_dream(self.cache.get(job.settings.model), job.start, settings=job.settings,
                         on_event=self.evaluator.dream_sink(sink, job.settings), cancel=cancel, device=self.cache.device)

        async for r in self._render(request, context, job, pb.RenderDreamResponse, "RenderDream", body):
            yield r

    async def RenderStyle(self, request: pb.RenderStyleRequest, context: Any) -> AsyncIterator[pb.RenderStyleResponse]:
        job = await self._read(self.requests.style, request)
        s = job.settings

        def scored(sink: Callable[[Event], None]) -> Callable[[Event], None]:
            return self.evaluator.style_sink(sink, s, job.content.numpy(), [x.numpy() for x in job.styles])

        def optimize(sink: Callable[[Event], None], cancel: threading.Event) -> None:
            net = self.cache.get(s.model)
            init = job.init_image
            if s.init == "feed_forward":  # made here, in the worker: the job's first second is its painting
                init = feed_forward_image(self.cache.feed_forward("arbitrary"), job.content, job.styles, s,
                                          first_scale_side(s, net, job.content.shape[-2:]))
            render_style(net, job.content, job.styles, settings=s, init_image=init, on_event=scored(sink),
                         cancel=cancel, device=self.cache.device)

        def feed_forward(sink: Callable[[Event], None], cancel: threading.Event) -> None:
            nets = self.cache.feed_forward("presets" if s.presets else "arbitrary")
            # Scoring costs about ten times the painting, so feed-forward results are scored on request only.
            events = scored(sink) if s.feed_forward_scores else self.evaluator.unscored(sink)
            render_feed_forward(nets, job.content, job.styles, settings=s, on_event=events, cancel=cancel)

        body = feed_forward if s.method == "feed_forward" else optimize
        async for r in self._render(request, context, job, pb.RenderStyleResponse, "RenderStyle", body):
            yield r

    async def Evaluate(self, request: pb.EvaluateRequest, context: Any) -> pb.EvaluateResponse:
        job = await self._read(self.requests.evaluate, request)
        s, terms = job.settings, style_terms(job.settings)

        def run() -> list[dict[str, float]]:
            scorer = self.evaluator.scorer(s.model, list(terms.content_layers) + list(terms.style_layers))
            return scorer.style_terms(job.content, job.styles, job.candidates, terms=terms,
                                      style_weights=[x.weight for x in s.styles],
                                      style_scales=[x.scale for x in s.styles])

        values = await asyncio.get_running_loop().run_in_executor(self.evaluator.pool, run)
        return pb.EvaluateResponse(model=s.model, evaluator=self.evaluator.name, candidates=[
            pb.CandidateScores(values=v, width=c.shape[-1], height=c.shape[-2])
            for v, c in zip(values, job.candidates)])

    async def ListModels(self, request: pb.ListModelsRequest, context: Any) -> pb.ListModelsResponse:
        models = []
        for spec in list_specs():
            models.append(pb.ModelInfo(
                name=spec.name, description=spec.description, available=is_available(spec, self.cache.store),
                layers=[pb.LayerInfo(name=layer.name, channels=layer.channels) for layer in spec.layers],
                default_dream_layer=spec.default_dream_layer, supports_style=spec.supports_style, kind=spec.kind,
                presets=[pb.PresetInfo(index=i, name=f"preset {i}") for i in range(spec.presets)]))
        device = self.cache.device
        return pb.ListModelsResponse(models=models, device=str(device), native_bf16=native_bf16(device))
