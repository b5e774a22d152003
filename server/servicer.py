"""The servicer: wires requests (checked by `requests`) to the scheduler, and engine events to responses."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, AsyncIterator, Callable

import torch

from dreamrender.models import FeatureNet, ModelStore, get_model, is_available, list_specs
from dreamrender.v1 import dreamrender_pb2 as pb
from dreamrender.v1 import dreamrender_pb2_grpc as pb_grpc

from .engine import render_dream, render_style
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
        self._lock = threading.Lock()

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
                 evaluator: Evaluator, metrics: Any = None) -> None:
        self.metrics = metrics
        self.cache = cache
        self.evaluator = evaluator
        self.scheduler = scheduler
        self.requests = requests
        self.server_id = server_id

    async def _stream(self, body: Callable[[Callable[[Event], None], threading.Event], None],
                      response_type: type, context: Any, *, frame_format: str,
                      result_format: str, rpc: str) -> AsyncIterator[Any]:
        def convert(e: Event) -> list[Any]:
            return to_responses(e, response_type, frame_format=frame_format, result_format=result_format)

        def run(emit: Callable[[Any], None], cancel: threading.Event) -> None:
            self._job_started(job)
            body(lambda e: [emit(r) for r in convert(self._observe_event(e, rpc))], cancel)

        # Read the peer now: touching the context after the call has ended can crash grpc's aio layer.
        peer = context.peer()
        # The caller's correlation id, when it sends one, goes into every log line of the job.
        request_id = next((str(v) for k, v in (context.invocation_metadata() or ()) if k == REQUEST_ID_KEY), "")
        job = Job(run, lambda q: convert(q)[0], rpc)
        position = self.scheduler.submit(job)
        log.info("job %s %s accepted at queue position %d (peer %s%s)", job.id, rpc, position, peer,
                 f", {REQUEST_ID_KEY} {request_id}" if request_id else "",
                 extra={"job_id": job.id, "rpc": rpc, "peer": peer, "request_id": request_id})
        yield convert(Accepted(job.id, position, self.server_id))[0]
        started = time.monotonic()
        status = "OK"
        try:
            async for response in job.responses():
                yield response
        except BaseException as exc:
            status = type(exc).__name__
            raise
        finally:
            if not job.finished:
                status = "CANCELLED"
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

    def _render(self, request: Any, context: Any, settings: Any, response_type: type, rpc: str,
                engine: Callable[[FeatureNet, Callable[[Event], None], threading.Event], None]) -> AsyncIterator[Any]:
        """Queue one render: `engine(net, sink, cancel)` runs in the worker with the settings' model."""
        def body(sink: Callable[[Event], None], cancel: threading.Event) -> None:
            engine(self.cache.get(settings.model), sink, cancel)

        return self._stream(body, response_type, context, frame_format=settings.preview.format,
                            result_format=result_format(request), rpc=rpc)

    # -- RPCs --------------------------------------------------------------------------
    async def RenderDream(self, request: pb.RenderDreamRequest, context: Any) -> AsyncIterator[pb.RenderDreamResponse]:
        job = self.requests.dream(request)

        def engine(net: FeatureNet, sink: Callable[[Event], None], cancel: threading.Event) -> None:
            render_dream(net, job.start, settings=job.settings, on_event=self.evaluator.dream_sink(sink, job.settings),
                         cancel=cancel, device=self.cache.device)

        async for r in self._render(request, context, job.settings, pb.RenderDreamResponse, "RenderDream", engine):
            yield r

    async def RenderStyle(self, request: pb.RenderStyleRequest, context: Any) -> AsyncIterator[pb.RenderStyleResponse]:
        job = self.requests.style(request)

        def engine(net: FeatureNet, sink: Callable[[Event], None], cancel: threading.Event) -> None:
            scored = self.evaluator.style_sink(sink, job.settings, job.content.numpy(), [x.numpy() for x in job.styles])
            render_style(net, job.content, job.styles, settings=job.settings, init_image=job.init_image,
                         on_event=scored, cancel=cancel, device=self.cache.device)

        async for r in self._render(request, context, job.settings, pb.RenderStyleResponse, "RenderStyle", engine):
            yield r

    async def Evaluate(self, request: pb.EvaluateRequest, context: Any) -> pb.EvaluateResponse:
        job = self.requests.evaluate(request)
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
                default_dream_layer=spec.default_dream_layer, supports_style=spec.supports_style))
        return pb.ListModelsResponse(models=models)
