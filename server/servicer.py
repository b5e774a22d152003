"""The servicer: wires requests (checked by `requests`) to the scheduler, and engine events to responses."""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import threading
import time
from typing import Any, AsyncIterator, Callable

import torch

from dreamrender.models import (FEED_FORWARD_MODELS, SHARED, FeatureNet, GeneratorStore, ModelStore, get_model,
                               get_spec, is_available, list_specs, weights_path)
from dreamrender.v1 import dreamrender_pb2 as pb
from dreamrender.v1 import dreamrender_pb2_grpc as pb_grpc

from ._batching import BatchingSession
from ._gan_work import Sessions, inception_loader, sample_body, train_body
from ._interceptor import CallOutcome, ended_as, status_for
from ._security import caller_of
from .engine import native_bf16, render_dream, render_style
from .engine.feedforward import (FeedForwardNets, feed_forward_image, free_batch_model, free_size_model, onnx_session,
                                 render_feed_forward)
from .engine.imaging import fit_long_side
from .engine.sizing import dream_memory, feed_forward_memory, gan_memory, style_memory
from .engine.style import first_scale_side, render_sizes
from .codec import AnimationWriter, encode_image
from .engine.events import Accepted, AnimationFrame, Checkpoint, Event, Progress, Result
from .engine.imaging import to_uint8
from .engine.runtime import RenderCancelled, ServerShuttingDown
from .evaluator import EvaluateRun, Evaluator
from .jobs import INTERRUPTED, QUEUED, JobRecord, JobStore, StoreOutOfSpaceError, StoreUnavailableError
from .jobs.journal import Journal
from .jobs.service import JobBook, check_request_id, request_fingerprint, retry_target, upkeep_round
from .memory import release_memory, trim_heap
from .requests import DreamJob, RequestReader, SampleJob, StyleJob, TrainJob
from .responses import to_responses
from .scheduler import LONG, SHORT, Job, Scheduler

__all__ = ["DreamRenderServicer", "ModelCache"]

log = logging.getLogger(__name__)
REQUEST_ID_KEY = "x-request-id"


class ModelCache:
    """Loaded networks per name on one device; loading happens in the worker thread."""

    def __init__(self, store: ModelStore, device: torch.device, metrics: Any = None, *, max_batch: int = 1,
                 max_wait: float = 0.005) -> None:
        self.metrics = metrics
        self.max_batch, self.max_wait = max_batch, max_wait  # dynamic batching of the short lane's runs
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
                    nets = FeedForwardNets(multistyle=self.batching(onnx_session(free_batch_model(files[0]))))
                self._feed_forward[which] = nets
                log.info("loaded feed-forward %s (%s) in %.2f s", which, ", ".join(names), time.perf_counter() - started)
            return self._feed_forward[which]

    def batching(self, session: Any) -> Any:
        """`session`, joining concurrent runs into batches when --ff-max-batch > 1."""
        return BatchingSession(session, max_batch=self.max_batch, max_wait=self.max_wait) if self.max_batch > 1 \
            else session

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


@dataclasses.dataclass(frozen=True)
class Work:
    """A checked render request, ready to run: its body and how its events become responses."""

    rpc: str
    response_type: type
    body: Callable[[Callable[[Event], None], threading.Event], None]
    frame_format: str
    result_format: str
    pixels: int
    lane: str = LONG  # SHORT: a feed-forward pass, run at once beside long work (#26)
    memory: int = 0  # estimated peak bytes, which admission counts while it runs

    def convert(self, e: Event) -> list[Any]:
        return to_responses(e, self.response_type, frame_format=self.frame_format, result_format=self.result_format)


def _job_memory(job: Any, *, evaluator: bool) -> int:
    """A checked job's estimated peak memory in bytes: what admission counts while it runs (#26)."""
    s = getattr(job, "settings", None)
    if isinstance(job, DreamJob):
        return dream_memory(*job.start.shape[-2:], job.settings, evaluator=evaluator)
    if isinstance(job, StyleJob) and s.method != "feed_forward":
        return style_memory(render_sizes(s, get_spec(s.model).min_side, job.content.shape[-2:]), s, evaluator=evaluator)
    if isinstance(job, StyleJob):
        return feed_forward_memory(*fit_long_side(*job.content.shape[-2:], s.size))
    return gan_memory(s, len(job.data.images)) if isinstance(job, TrainJob) else 0


def _animated(sink: Callable[[Event], None], writer: AnimationWriter) -> Callable[[Event], None]:
    """A zoom dream's events: each AnimationFrame goes into `writer` (not to the caller, who gets
    its preview Frame), and the Result carries the finished animation."""
    def events(e: Event) -> None:
        if isinstance(e, AnimationFrame):
            writer.add(e.image)
        elif isinstance(e, Result):
            sink(dataclasses.replace(e, encoded=writer.finish()))
        else:
            sink(e)

    return events


def _png(image: Any) -> bytes:
    """A checkpoint's float image ((1, 3, H, W) in [0, 1]) as PNG."""
    return encode_image(to_uint8(torch.from_numpy(image)), "png")[0]


class DreamRenderServicer(pb_grpc.DreamRenderServiceServicer):
    """Implements dreamrender.v1.DreamRenderService on top of the engines."""

    def __init__(self, *, cache: ModelCache, scheduler: Scheduler, requests: RequestReader, server_id: str,
                 evaluator: Evaluator, store: JobStore, metrics: Any = None, callers_by_token: bool = False,
                 max_message_bytes: int = 0) -> None:
        self.store = store
        self.book = JobBook(store, private=callers_by_token, max_message_bytes=max_message_bytes)
        self._live: dict[str, Job] = {}  # jobs of this process not yet finished, by id
        self.unsaved: set[Journal] = set()  # jobs whose last record waits for the store to be back
        self.metrics = metrics
        self.callers_by_token = callers_by_token
        self.cache = cache
        self.evaluator = evaluator
        self.scheduler = scheduler
        self.requests = requests
        self.server_id = server_id
        self.decoder = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="decode")
        self.sessions = Sessions(cache.batching)  # generators' onnxruntime sessions

    async def _read(self, read: Callable[..., Any], request: Any, *args: Any) -> Any:
        """Check and decode a request in the decode threads, never on the event loop (an 8000x8000
        PNG takes seconds to decode, and health checks must answer meanwhile). Two at a time:
        that also bounds the memory that decoding in flight holds."""
        return await asyncio.get_running_loop().run_in_executor(self.decoder, read, request, *args)

    async def keep_jobs(self, every: float = 10.0) -> None:
        """Upkeep of the job store, every `every` s: say this replica is alive, drop expired
        records, and take over unfinished jobs whose server is gone (see resume_jobs)."""
        down = 0  # heartbeats in a row the store refused: the wait backs off, and it is said once
        while True:
            down = await upkeep_round(self.store, self.server_id, every, self.resume_jobs, self.unsaved, down)
            await asyncio.sleep(min(every * 2 ** min(down, 5), max(every, 30.0)))

    async def resume_jobs(self) -> int:
        """Run again the detached jobs left queued, running or interrupted by a server that is gone
        (this one's previous run, or a replica that stopped beating); others' calls ended with
        their server, so their jobs are marked failed. Returns how many were resumed."""
        resumed = 0
        for rec in await asyncio.to_thread(self.store.unfinished):
            if rec.server_id == self.server_id or await asyncio.to_thread(self.store.alive, rec.server_id):
                continue
            if not await asyncio.to_thread(self.store.claim, rec.id, rec.server_id, self.server_id):
                continue  # another replica took it first
            journal = Journal(self.store, rec.id, threading.Event())
            if not rec.detached:
                if rec.state != INTERRUPTED:  # INTERRUPTED, the proto's state for this; its checkpoint stays
                    journal.interrupted("the server stopped while the job ran, and its call was not detached; "
                                        "send the request again (the same request_id starts it afresh)")
                continue
            try:
                full = await asyncio.to_thread(self.store.get, rec.id)  # with its request and best image
                if full is None or not full.request:
                    continue  # expired meanwhile, or stored without its request
                await self._resume(full)
                resumed += 1
            except Exception as exc:
                code, message, _ = status_for(exc)
                journal.ended(code.name, f"could not run it again: {message}")
        return resumed

    async def _resume(self, rec: JobRecord) -> None:
        if rec.kind == "RenderStyle":
            request = pb.RenderStyleRequest.FromString(rec.request)
            if rec.checkpoint and request.method != pb.STYLE_METHOD_FEED_FORWARD:
                # From its best image so far, as an init image. The optimiser's state (L-BFGS's
                # history, Adam's moments) and the scale it had reached are not kept: it runs
                # its scales and iterations again from that picture.
                request.init = pb.STYLE_INIT_IMAGE
                request.init_image.CopyFrom(pb.Image(data=rec.checkpoint, media_type="image/png"))
            work = self._style_work(await self._read(self.requests.style, request))
        elif rec.kind == "TrainGenerator":  # from its last epoch's saved state (see _gan_work)
            request = pb.TrainGeneratorRequest.FromString(rec.request)
            work = self._train_work(await self._read(self.requests.train, request), self._namespace(rec.owner),
                                    resume=True)
        elif rec.kind == "RenderSample":
            request = pb.RenderSampleRequest.FromString(rec.request)
            work = self._sample_work(await self._read(self.requests.sample, request, self._namespace(rec.owner)))
        else:  # a dream starts afresh: dreaming its partial picture again would compound the effect
            request = pb.RenderDreamRequest.FromString(rec.request)
            work = self._dream_work(await self._read(self.requests.dream, request))
        await self._submit(work, rec, rec.owner or "resumed")
        log.info("job %s %s resumed (from %s)", rec.id, rec.kind, "its checkpoint" if rec.checkpoint else "the start",
                 extra={"job_id": rec.id, "rpc": rec.kind})

    def _namespace(self, owner: str) -> str:
        """Where a caller's generators live: its own with tokens on, else one shared by all."""
        return owner if self.callers_by_token and owner else SHARED

    def _owner(self, metadata: Any, peer: str) -> str:
        """Who owns the jobs a call starts, and whose request_ids it shares: its token (hashed)
        when tokens are on, else its host (then every caller may still reach every job by id)."""
        return caller_of(metadata, peer, by_token=self.callers_by_token)

    async def _stream(self, work: Work, request: Any, context: Any) -> AsyncIterator[Any]:
        # Read the peer now: touching the context after the call has ended can crash grpc's aio layer.
        peer = context.peer()
        # The caller's correlation id, when it sends one, goes into every log line of the job.
        metadata = context.invocation_metadata() or ()
        request_id = next((str(v) for k, v in metadata if k == REQUEST_ID_KEY), "")
        owner, key = self._owner(metadata, peer), check_request_id(request.request_id)
        fingerprint = request_fingerprint(request) if key else ""
        if key:
            existing = await asyncio.to_thread(self.store.find, owner, key)
            if existing is not None and retry_target(existing, work.rpc, fingerprint):
                log.info("job %s %s re-attached by request_id (peer %s)", existing.id, work.rpc, peer,
                         extra={"job_id": existing.id, "rpc": work.rpc, "peer": peer})
                async for r in self.book.watch(existing.id, owner, work.response_type):
                    yield r
                return
        record = JobRecord("", work.rpc, owner=owner, request=request.SerializeToString() if request.detach else b"",
                           request_id=key, request_hash=fingerprint, detached=request.detach,
                           server_id=self.server_id)
        job = await self._submit(work, record, owner)
        log.info("job %s %s accepted at queue position %d (peer %s%s%s)", job.id, work.rpc, job.position, peer,
                 f", {REQUEST_ID_KEY} {request_id}" if request_id else "", ", detached" if request.detach else "",
                 extra={"job_id": job.id, "rpc": work.rpc, "peer": peer, "request_id": request_id})
        yield work.convert(Accepted(job.id, job.position, self.server_id))[0]
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
                status = ended_as(call) if not request.detach else "DETACHED"
            if not request.detach and self.scheduler.withdraw(job):  # no-op for a finished job
                Journal(self.store, job.id, job.cancel).ended("CANCELLED", "the caller went away before it started")
            elapsed = time.monotonic() - started
            if self.metrics is not None and job.started:
                self.metrics.render_seconds.labels(work.rpc, work.lane).observe(elapsed)
            log.info("job %s %s %s: %s after %.2f s", job.id, work.rpc,
                     "left running" if status == "DETACHED" else "ended", status, elapsed,
                     extra={"job_id": job.id, "rpc": work.rpc, "peer": peer, "status": status,
                            "duration": round(elapsed, 3), "request_id": request_id})

    async def _submit(self, work: Work, record: JobRecord, caller: str) -> Job:
        """Record the job, then queue it (a refused job's record says why)."""
        job = Job(lambda emit, cancel: self._run(job, work, journal, emit, cancel), lambda q: work.convert(q)[0],
                  work.rpc, pixels=work.pixels, caller=caller, job_id=record.id, lane=work.lane, memory=work.memory)
        journal = Journal(self.store, job.id, job.cancel, encode_png=_png if work.rpc == "RenderStyle" else None,
                          deferred=work.lane == SHORT, record=record, on_unsaved=self.unsaved.add,
                          on_write=self.book.changed)
        if record.id:  # resumed: the record exists
            # (resume_jobs' claim made this server the job's server)
            await asyncio.to_thread(self.store.update, job.id, state=QUEUED, resumed=record.resumed + 1,
                                    cancel_requested=False, error_code="", error_message="")
        else:
            record.id = job.id
            try:
                await asyncio.to_thread(self.store.create, record, capped=record.detached)
            except (StoreUnavailableError, StoreOutOfSpaceError) as exc:
                if record.detached:  # a detached job is its record: refused without it
                    raise
                log.warning("job %s runs without its record for now: %s", job.id, exc)
        try:
            self.scheduler.submit(job)
        except Exception as exc:
            code, message, _ = status_for(exc)
            journal.ended(code.name, message)
            raise
        self._live[job.id] = job
        return job

    def _run(self, job: Job, work: Work, journal: Journal, emit: Callable[[Any], None],
             cancel: threading.Event) -> None:
        """A job's body in the worker: the render, its responses to the caller and the store."""
        self._job_started(job)
        journal.started()

        def sink(e: Event) -> None:
            if isinstance(e, Checkpoint):  # kept for resuming; the caller sees frames and scores
                if work.lane == LONG:  # a one-pass painting's result is its only picture: nothing to resume
                    journal.checkpoint(e.image)
                return
            for r in work.convert(self._observe_event(e, work.rpc)):
                journal.response(r)
                emit(r)

        try:
            work.body(sink, cancel)
        except BaseException as exc:
            reason = job.abort_reason or exc
            if isinstance(reason, ServerShuttingDown):
                journal.interrupted(str(reason))
            else:
                code, message, _ = status_for(reason)
                journal.ended(code.name, message)
            raise
        finally:
            self._live.pop(job.id, None)

    def _job_started(self, job: Job) -> None:
        if self.metrics is not None:
            self.metrics.queue_wait.labels(job.lane).observe(time.monotonic() - job.created)

    def _observe_event(self, event: Event, rpc: str) -> Event:
        """Count steps for the metrics as events flow out of the engine (worker thread)."""
        if self.metrics is not None and isinstance(event, Progress):
            self.metrics.iterations.labels(rpc).inc()
            if event.elapsed_seconds > 0:
                self.metrics.iterations_per_second.labels(rpc).set(event.step / event.elapsed_seconds)
        return event

    def _memory(self, job: Any) -> int:
        return _job_memory(job, evaluator=self.requests.limits.evaluator)

    def _dream_work(self, job: DreamJob) -> Work:
        s, fmt = job.settings, job.result_format

        def body(sink: Callable[[Event], None], cancel: threading.Event) -> None:
            events = self.evaluator.dream_sink(sink, s)
            render_dream(self.cache.get(s.model), job.start, settings=s, guide=job.guide, mask=job.mask, cancel=cancel,
                         on_event=_animated(events, AnimationWriter(fmt, s.frame_ms)) if s.zoom_frames else events,
                         device=self.cache.device)

        return Work("RenderDream", pb.RenderDreamResponse, body, s.preview.format, fmt, job.pixels,
                    memory=self._memory(job))

    def _style_work(self, job: StyleJob) -> Work:
        s = job.settings

        def scored(sink: Callable[[Event], None]) -> Callable[[Event], None]:
            return self.evaluator.style_sink(sink, s, job.content.numpy(), [x.numpy() for x in job.styles])

        def optimize(sink: Callable[[Event], None], cancel: threading.Event) -> None:
            net = self.cache.get(s.model)
            init = job.init_image
            if s.init == "feed_forward":  # made here, in the worker: the job's first second is its painting
                init = feed_forward_image(self.cache.feed_forward("arbitrary"), job.content, job.styles, s,
                                          first_scale_side(s, net, job.content.shape[-2:]), job.masks)
            render_style(net, job.content, job.styles, settings=s, init_image=init, on_event=scored(sink),
                         cancel=cancel, device=self.cache.device, between_scales=release_memory,
                         after_tiled_step=trim_heap, masks=job.masks, source_masks=job.source_masks)

        def feed_forward(sink: Callable[[Event], None], cancel: threading.Event) -> None:
            nets = self.cache.feed_forward("presets" if s.presets else "arbitrary")
            # Scoring costs about ten times the painting, so feed-forward results are scored on request only.
            events = scored(sink) if s.feed_forward_scores else self.evaluator.unscored(sink)
            render_feed_forward(nets, job.content, job.styles, settings=s, on_event=events, cancel=cancel,
                                masks=job.masks)

        short = s.method == "feed_forward"
        return Work("RenderStyle", pb.RenderStyleResponse, feed_forward if short else optimize, s.preview.format,
                    job.result_format, job.pixels, SHORT if short else LONG, self._memory(job))

    def _train_work(self, job: TrainJob, namespace: str, *, resume: bool = False) -> Work:
        body = train_body(job, store=self.cache.store, namespace=namespace, device=self.cache.device, resume=resume,
                          inception=inception_loader(self.cache.store, self.cache.get))
        return Work("TrainGenerator", pb.TrainGeneratorResponse, body, job.settings.preview.format, "png", job.pixels,
                    memory=self._memory(job))

    def _sample_work(self, job: SampleJob) -> Work:
        s, body = job.settings, sample_body(job, self.sessions)
        if s.walk:
            still = body

            def body(sink: Callable[[Event], None], cancel: threading.Event) -> None:
                still(_animated(sink, AnimationWriter(job.result_format, s.frame_ms)), cancel)

        return Work("RenderSample", pb.RenderSampleResponse, body, s.preview.format, job.result_format, job.pixels,
                    SHORT)

    # -- RPCs --------------------------------------------------------------------------
    async def TrainGenerator(self, request: pb.TrainGeneratorRequest,
                             context: Any) -> AsyncIterator[pb.TrainGeneratorResponse]:
        namespace = self._namespace(self._owner(context.invocation_metadata(), context.peer()))
        job = await self._read(self.requests.train, request)
        async for r in self._stream(self._train_work(job, namespace), request, context):
            yield r

    async def RenderSample(self, request: pb.RenderSampleRequest, context: Any) -> AsyncIterator[pb.RenderSampleResponse]:
        namespace = self._namespace(self._owner(context.invocation_metadata(), context.peer()))
        job = await self._read(self.requests.sample, request, namespace)
        async for r in self._stream(self._sample_work(job), request, context):
            yield r

    async def RenderDream(self, request: pb.RenderDreamRequest, context: Any) -> AsyncIterator[pb.RenderDreamResponse]:
        job = await self._read(self.requests.dream, request)
        async for r in self._stream(self._dream_work(job), request, context):
            yield r

    async def RenderStyle(self, request: pb.RenderStyleRequest, context: Any) -> AsyncIterator[pb.RenderStyleResponse]:
        job = await self._read(self.requests.style, request)
        async for r in self._stream(self._style_work(job), request, context):
            yield r

    async def GetJob(self, request: pb.GetJobRequest, context: Any) -> pb.GetJobResponse:
        owner = self._owner(context.invocation_metadata(), context.peer())
        return pb.GetJobResponse(job=await self.book.get(request.job_id, owner))

    async def WatchJob(self, request: pb.WatchJobRequest, context: Any) -> AsyncIterator[pb.WatchJobResponse]:
        async for r in self.book.watch(request.job_id, self._owner(context.invocation_metadata(), context.peer()),
                                       pb.WatchJobResponse):
            yield r

    async def CancelJob(self, request: pb.CancelJobRequest, context: Any) -> pb.CancelJobResponse:
        owner = self._owner(context.invocation_metadata(), context.peer())
        return pb.CancelJobResponse(job=await self.book.cancel(request.job_id, owner, self._cancel_here))

    async def ListJobs(self, request: pb.ListJobsRequest, context: Any) -> pb.ListJobsResponse:
        return await self.book.list(self._owner(context.invocation_metadata(), context.peer()), request.state,
                                    request.page_size, request.page_token)

    def _cancel_here(self, job_id: str) -> bool:
        job = self._live.get(job_id)
        if job is None:
            return False
        self.scheduler.cancel(job, RenderCancelled(f"job {job_id} cancelled by CancelJob"))
        if not job.started:
            Journal(self.store, job_id, job.cancel).ended("CANCELLED", "cancelled by CancelJob")
        return True

    async def Evaluate(self, request: pb.EvaluateRequest, context: Any) -> pb.EvaluateResponse:
        job = await self._read(self.requests.evaluate, request)
        run = EvaluateRun(self.evaluator, job)
        queued = Job(run.body, lambda _q: None, "Evaluate", pixels=run.pixels, lane=SHORT, memory=run.memory,
                     caller=self._owner(context.invocation_metadata(), context.peer()))
        self.scheduler.submit(queued)  # the short lane's queue, per-caller cap and memory admission
        try:
            async for _ in queued.responses():  # queue positions: a unary call has nowhere to send them
                pass
        finally:
            self.scheduler.withdraw(queued)  # the call ended early: drop it, or stop it between candidates
        return pb.EvaluateResponse(model=job.settings.model, evaluator=self.evaluator.name, candidates=[
            pb.CandidateScores(values=v, width=c.shape[-1], height=c.shape[-2])
            for v, c in zip(run.values, job.candidates)])

    async def ListModels(self, request: pb.ListModelsRequest, context: Any) -> pb.ListModelsResponse:
        models = []
        for spec in list_specs():
            models.append(pb.ModelInfo(
                name=spec.name, description=spec.description, available=is_available(spec, self.cache.store),
                layers=[pb.LayerInfo(name=layer.name, channels=layer.channels) for layer in spec.layers],
                # A default objective of several layers reads "mixed3+mixed5" (display only).
                default_dream_layer="+".join(spec.dream_layers),
                supports_style=spec.supports_style, kind=spec.kind,
                presets=[pb.PresetInfo(index=i, name=f"preset {i}") for i in range(spec.presets)]))
        namespace = self._namespace(self._owner(context.invocation_metadata(), context.peer()))
        for g in await asyncio.to_thread(GeneratorStore(self.cache.store).trained, namespace):
            models.append(pb.ModelInfo(name=g.name, description=g.description, available=True, kind="generator"))
        device = self.cache.device
        return pb.ListModelsResponse(models=models, device=str(device), native_bf16=native_bf16(device))
