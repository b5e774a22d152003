"""The servicer: validates requests, queues jobs, adapts engine events to the response stream."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from typing import Any, AsyncIterator, Callable

import torch

from dreamrender.errors import InvalidArgumentError
from dreamrender.models import FeatureNet, ModelStore, get_model, get_spec, is_available, list_specs
from dreamrender.settings import DreamTerm
from dreamrender.v1 import dreamrender_pb2 as pb
from dreamrender.v1 import dreamrender_pb2_grpc as pb_grpc

from . import _proto
from ._imaging import decode_image, resize_long_side, to_tensor
from ._evaluator import Evaluator
from ._jobs import Job, Scheduler
from .dream import check_terms, dream_noise, render_dream
from .events import Accepted, Event, Progress

__all__ = ["DreamRenderServicer", "ModelCache", "Limits"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Operator limits on what a request may ask for."""

    max_input_pixels: int = 64_000_000  # decoding refused above this (decompression bombs)
    max_side: int = 4096  # longest side of any render's output


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

    def __init__(self, *, cache: ModelCache, scheduler: Scheduler, limits: Limits, server_id: str,
                 evaluator: Evaluator, default_dream_model: str = "vgg16", default_style_model: str = "vgg16",
                 metrics: Any = None) -> None:
        self.metrics = metrics
        self.cache = cache
        self.evaluator = evaluator
        self.scheduler = scheduler
        self.limits = limits
        self.server_id = server_id
        self.default_dream_model = default_dream_model
        self.default_style_model = default_style_model

    # -- helpers -----------------------------------------------------------------------
    def _image(self, image: pb.Image, field: str) -> torch.Tensor:
        return to_tensor(decode_image(image.data, field, max_pixels=self.limits.max_input_pixels,
                                      media_type=image.media_type))

    def _check_side(self, side: int, field: str) -> None:
        if side > self.limits.max_side:
            raise InvalidArgumentError(field, f"{side} px is over the server's limit", f"at most {self.limits.max_side}")

    def _available_spec(self, name: str):
        spec = get_spec(name)
        if not is_available(spec, self.cache.store):
            from dreamrender.models import WeightsError

            raise WeightsError(f"weights of {name!r} are not on this server; run: dreamctl models pull {name}")
        return spec

    async def _stream(self, body: Callable[[Callable[[Event], None], threading.Event], None],
                      response_type: type, context: Any, *, frame_format: str,
                      result_format: str, rpc: str) -> AsyncIterator[Any]:
        def convert(e: Event) -> list[Any]:
            return _proto.to_responses(e, response_type, frame_format=frame_format, result_format=result_format)

        def run(emit: Callable[[Any], None], cancel: threading.Event) -> None:
            self._job_started(job)
            body(lambda e: [emit(r) for r in convert(self._observe_event(e, rpc))], cancel)

        # Read the peer now: touching the context after the call has ended can crash grpc's aio layer.
        peer = context.peer()
        job = Job(run, lambda q: convert(q)[0], rpc)
        position = self.scheduler.submit(job)
        log.info("job %s %s accepted at queue position %d (peer %s)", job.id, rpc, position, peer)
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
                            "duration": round(elapsed, 3)})

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

    # -- RPCs --------------------------------------------------------------------------
    async def RenderDream(self, request: pb.RenderDreamRequest, context: Any) -> AsyncIterator[pb.RenderDreamResponse]:
        settings = _proto.dream_settings(request, default_model=self.default_dream_model)
        spec = self._available_spec(settings.model)
        if not settings.terms:
            channels = tuple(spec.extra.get("default_dream_channels", ()))
            settings = dataclasses.replace(settings, terms=(DreamTerm(spec.default_dream_layer, channels),))
        check_terms(spec.name, {layer.name: layer for layer in spec.layers}, settings.terms)
        start = self._dream_start(request, settings.size, spec.min_side)

        def body(sink: Callable[[Event], None], cancel: threading.Event) -> None:
            net = self.cache.get(settings.model)
            render_dream(net, start, settings=settings, on_event=self.evaluator.dream_sink(sink, settings),
                         cancel=cancel, device=self.cache.device)

        async for r in self._stream(body, pb.RenderDreamResponse, context, frame_format=settings.preview.format,
                                    result_format=_proto.result_format(request), rpc="RenderDream"):
            yield r

    def _dream_start(self, request: pb.RenderDreamRequest, size: int, min_side: int) -> torch.Tensor:
        which = request.WhichOneof("start")
        if which is None:
            raise InvalidArgumentError("start", "neither image nor noise given", "image or noise")
        if which == "noise":
            w, h = request.noise.width, request.noise.height
            for field, v in (("noise.width", w), ("noise.height", h)):
                if not min_side <= v <= self.limits.max_side:
                    raise InvalidArgumentError(field, f"{v} is out of range", f"{min_side} to {self.limits.max_side}")
            start = dream_noise(w, h, request.seed)
        else:
            start = self._image(request.image, "image")
        if size:
            self._check_side(size, "size")
            start = resize_long_side(start, size)
        self._check_side(max(start.shape[-2:]), "image" if which == "image" and not size else "size")
        if min(start.shape[-2:]) < min_side:
            raise InvalidArgumentError("size" if size else which, f"shorter side {min(start.shape[-2:])} px is too small",
                                       f"at least {min_side} px")
        return start

    async def RenderStyle(self, request: pb.RenderStyleRequest, context: Any) -> AsyncIterator[pb.RenderStyleResponse]:
        from ._style_service import prepare_style

        settings, inputs = prepare_style(self, request)

        def body(sink: Callable[[Event], None], cancel: threading.Event) -> None:
            from .style import render_style

            net = self.cache.get(settings.model)
            scored = self.evaluator.style_sink(sink, settings, inputs.content.numpy(), [x.numpy() for x in inputs.styles])
            render_style(net, inputs.content, inputs.styles, settings=settings, init_image=inputs.init_image,
                         on_event=scored, cancel=cancel, device=self.cache.device)

        async for r in self._stream(body, pb.RenderStyleResponse, context, frame_format=settings.preview.format,
                                    result_format=_proto.result_format(request), rpc="RenderStyle"):
            yield r

    async def Evaluate(self, request: pb.EvaluateRequest, context: Any) -> pb.EvaluateResponse:
        from ._style_service import prepare_evaluate

        model, run = prepare_evaluate(self, request)
        results = await asyncio.get_running_loop().run_in_executor(self.evaluator.pool, run)
        return pb.EvaluateResponse(model=model, evaluator=self.evaluator.name, candidates=[
            pb.CandidateScores(values=values, width=w, height=h) for values, (h, w) in results])

    async def ListModels(self, request: pb.ListModelsRequest, context: Any) -> pb.ListModelsResponse:
        models = []
        for spec in list_specs():
            models.append(pb.ModelInfo(
                name=spec.name, description=spec.description, available=is_available(spec, self.cache.store),
                layers=[pb.LayerInfo(name=layer.name, channels=layer.channels) for layer in spec.layers],
                default_dream_layer=spec.default_dream_layer, supports_style=spec.supports_style))
        return pb.ListModelsResponse(models=models)

