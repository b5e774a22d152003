"""Job scheduling, off the asyncio loop: per device, a long lane (one job at a time) and a short
lane (a few at once), each with a bounded queue served fairly between callers (#26)."""
from __future__ import annotations

import asyncio
import collections
import contextlib
import concurrent.futures
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from ._cpu_share import CpuShare, current_share, install_pause_hooks, pausable_thread

from .engine.events import Queued
from .memory import large_blocks_mapped, release_memory

__all__ = ["QueueFullError", "QueuedPixelsError", "CallerLimitError", "Job", "Scheduler", "LaneLimits", "LONG", "SHORT"]

log = logging.getLogger(__name__)
_DONE = object()


def _released(*_args: Any) -> None:
    raise RuntimeError("job already ran")


class QueueFullError(RuntimeError):
    """The device's queue is full; the caller should retry later (RESOURCE_EXHAUSTED)."""

    def __init__(self, limit: int, retry_after: float, why: str = "") -> None:
        self.limit = limit
        self.retry_after = retry_after
        # One figure in the message and in RetryInfo (which carries retry_after, in ms).
        why = why or f"render queue is full ({limit} waiting)"
        super().__init__(f"{why}; retry in about {retry_after:.1f} s")


class QueuedPixelsError(QueueFullError):
    """The waiting jobs' decoded images would exceed the operator's memory budget (RESOURCE_EXHAUSTED)."""

    def __init__(self, queued: int, asked: int, limit: int, retry_after: float) -> None:
        super().__init__(limit, retry_after, f"waiting jobs hold {queued / 1e6:.1f} Mpx of images and this one "
                                             f"{asked / 1e6:.1f} Mpx, over the server's {limit / 1e6:.0f} Mpx budget")


class CallerLimitError(QueueFullError):
    """This caller already has its share of running plus waiting jobs (RESOURCE_EXHAUSTED)."""

    def __init__(self, limit: int, retry_after: float) -> None:
        super().__init__(limit, retry_after, f"you already have {limit} jobs running or waiting on this server, "
                                             f"its per-caller limit")


# A job's body runs in the worker thread: work(emit, cancel) -> None. `emit` takes a ready
# protobuf response (converted in the worker so the event loop never encodes images).
JobBody = Callable[[Callable[[Any], None], threading.Event], None]


class Job:
    """One render: its body, its cancel flag, and the queue its responses flow through."""

    def __init__(self, body: JobBody, make_queued: Callable[[Queued], Any], rpc: str, *, pixels: int = 0,
                 caller: str = "", job_id: str = "", lane: str = "long", memory: int = 0) -> None:
        self.id = job_id or uuid.uuid4().hex[:16]  # a resumed job keeps its id
        self.body = body
        self.rpc = rpc
        self.caller = caller  # who asked: fairness is per caller
        self.pixels = pixels  # decoded image pixels the job holds until it runs
        self.lane = lane  # "long" or "short"
        self.memory = memory  # bytes it is estimated to need at its peak (0: not estimated)
        self.make_queued = make_queued
        self.cancel = threading.Event()
        self.created = time.monotonic()
        self._loop = asyncio.get_running_loop()
        # What waits for the caller to read it. Once _BACKLOG responses wait, progress, frames and
        # scores are "latest wins": a newer one replaces the oldest waiting one of its kind, so a
        # caller that stops reading holds a bounded backlog (a stalled client with a PNG preview
        # every step once grew the server by 470 MB in 30 s). A caller that keeps up loses nothing.
        # Queue positions, result chunks, the result and the end are always kept.
        self._pending: collections.deque[Any] = collections.deque()
        self._ready = asyncio.Event()
        self.started = False
        self.finished = False
        self.position = 0
        self.abort_reason: BaseException | None = None  # set when the server, not the caller, stops it

    def emit(self, response: Any) -> None:
        """Thread-safe: hand a response to the caller's stream."""
        self._loop.call_soon_threadsafe(self._push, response)

    def _push(self, item: Any) -> None:
        kind = _kind(item)
        if kind in _LATEST_WINS and len(self._pending) >= _BACKLOG:
            for i, old in enumerate(self._pending):
                if _kind(old) == kind:
                    del self._pending[i]
                    break
        self._pending.append(item)
        self._ready.set()

    @property
    def pending(self) -> int:
        """Responses waiting for the caller to read them."""
        return len(self._pending)

    def _finish(self, error: BaseException | None) -> None:
        self.finished = True
        self._loop.call_soon_threadsafe(self._push, error if error is not None else _DONE)

    async def responses(self) -> AsyncIterator[Any]:
        """The job's responses until it ends; re-raises the body's exception."""
        while True:
            while not self._pending:
                self._ready.clear()
                await self._ready.wait()
            item = self._pending.popleft()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class _PausingCancel:
    """A long job's cancel flag whose every check first waits while short work runs: engines check
    it between steps and tiles, which covers networks without module hooks (see _cpu_share)."""

    def __init__(self, event: threading.Event, share: CpuShare) -> None:
        self._event, self._share = event, share

    def is_set(self) -> bool:
        self._share.pause_point()
        return self._event.is_set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._event, name)


# Bytes: short jobs estimated above this hand their memory back when they end. A painting over
# feedforward.ARENA_KEEP_PIXELS (which shrinks onnxruntime's arena) is estimated above it.
_TRIM_ABOVE = 320 << 20
_LATEST_WINS = ("progress", "frame", "scores")
_CALLERS_KEPT = 1024
_BACKLOG = 8


def _kind(item: Any) -> str | None:
    """The event kind of a response message (None for the end marker or an error)."""
    which = getattr(item, "WhichOneof", None)
    return which("event") if which is not None else None


LONG, SHORT = "long", "short"


@dataclass(frozen=True)
class LaneLimits:
    """One lane's limits: jobs that may wait, jobs one caller may hold (0: no cap), jobs at once."""

    max_queue: int = 16
    max_jobs_per_caller: int = 0
    concurrency: int = 1


class _Lane:
    """A lane's waiting jobs, running jobs and worker threads.

    Waiting callers are served in turn: the next job is the oldest one of the caller who was served
    longest ago (or never), so one caller's backlog does not hold the others back."""

    def __init__(self, name: str, device: str, limits: LaneLimits, initializer: Callable[[], None] | None) -> None:
        self.name, self.limits = name, limits
        self.executor = concurrent.futures.ThreadPoolExecutor(limits.concurrency, f"{name}-{device}", initializer)
        self.waiting: collections.deque[Job] = collections.deque()
        self.running: list[Job] = []
        self._served: dict[str, int] = {}  # caller -> turn number of its last job started
        self._turn = 0
        self.recent: collections.deque[float] = collections.deque(maxlen=20)

    @property
    def active(self) -> int:
        # A job whose body has ended is only releasing memory: it does not count as ahead of anyone.
        return sum(not j.finished for j in self.running)

    @property
    def full(self) -> bool:
        return len(self.running) >= self.limits.concurrency

    def typical(self) -> float:
        """Seconds a job of this lane takes, from the last ones (30 s before any has run)."""
        return sum(self.recent) / len(self.recent) if self.recent else 30.0

    def held_by(self, caller: str) -> int:
        return sum(j.caller == caller and not j.finished for j in self.running) + \
            sum(j.caller == caller for j in self.waiting)

    def order(self) -> list[Job]:
        """The waiting jobs in the order they will start (served in turn; see the class)."""
        served, waiting, order = dict(self._served), list(self.waiting), []
        turn = self._turn
        while waiting:
            nxt = min(waiting, key=lambda j: served.get(j.caller, -1))  # min keeps arrival order on ties
            waiting.remove(nxt)
            order.append(nxt)
            turn += 1
            served[nxt.caller] = turn
        return order

    def take(self, job: Job) -> None:
        """Move `job` from waiting to running, and remember its caller was served."""
        self.waiting.remove(job)
        self._turn += 1
        self._served[job.caller] = self._turn
        if len(self._served) > _CALLERS_KEPT:  # forget the callers served longest ago
            for caller in sorted(self._served, key=self._served.__getitem__)[:_CALLERS_KEPT // 2]:
                del self._served[caller]
        self.running.append(job)

    def eta(self, position: int) -> float:
        """Seconds until a job at `position` may start, from this lane's typical job."""
        return position * self.typical() / self.limits.concurrency


class Scheduler:
    """Runs a device's jobs in two lanes (#26), so fast work never waits behind slow work.

    The long lane (Gatys, dreams, GAN training) runs one job at a time; the short lane
    (feed-forward paintings, samples) runs up to `short.concurrency` at once, and starts them even
    while a long job runs. Each lane has its own queue, per-caller cap and positions. A job starts
    only when the estimated memory of all running jobs, both lanes', stays within `max_memory`
    (a lone job always starts: the request check refused any over the limit alone). On a CPU
    the lanes time-share the cores through `CpuShare` (see _cpu_share)."""

    def __init__(self, device: str, *, max_queue: int = 16, max_queued_pixels: int = 0,
                 max_jobs_per_caller: int = 0, short: LaneLimits | None = None, max_memory: int = 0,
                 short_share: float = 0.25, short_burst: float = 2.0) -> None:
        self.device = device
        self.max_queued_pixels = max_queued_pixels  # 0: no budget
        self.max_memory = max_memory  # 0: no budget
        # Pausing only helps when both lanes compute on the same cores.
        self.share = CpuShare(short_share, short_burst) if device == "cpu" and short_share else None
        if self.share is not None:
            install_pause_hooks()
        self.lanes = {
            LONG: _Lane(LONG, device, LaneLimits(max_queue, max_jobs_per_caller, 1),
                        (lambda: pausable_thread(self.share)) if self.share is not None else None),
            SHORT: _Lane(SHORT, device, short or LaneLimits(64, max_jobs_per_caller, 4), None),
        }
        self._timer: asyncio.TimerHandle | None = None

    @property
    def queue_depth(self) -> int:
        return sum(len(lane.waiting) for lane in self.lanes.values())

    @property
    def active(self) -> int:
        return sum(lane.active for lane in self.lanes.values())

    @property
    def _recent(self) -> collections.deque[float]:
        return self.lanes[LONG].recent

    def running(self) -> list[Job]:
        """The jobs whose bodies run now, in both lanes."""
        return [j for lane in self.lanes.values() for j in lane.running if not j.finished]

    def submit(self, job: Job) -> int:
        """Queue `job` in its lane; return its position there (0 = starts now). Raises QueueFullError."""
        lane = self.lanes[job.lane]
        typical = lane.typical()
        if len(lane.waiting) >= lane.limits.max_queue and lane.running:
            raise QueueFullError(lane.limits.max_queue, typical,
                                 f"{job.lane} render queue is full ({lane.limits.max_queue} waiting)")
        cap = lane.limits.max_jobs_per_caller
        if cap and lane.held_by(job.caller) >= cap:
            raise CallerLimitError(cap, typical)
        queued = sum(j.pixels for x in self.lanes.values() for j in x.waiting)
        busy = bool(self.running() or self.queue_depth)
        if busy and self.max_queued_pixels and queued + job.pixels > self.max_queued_pixels:
            raise QueuedPixelsError(queued, job.pixels, self.max_queued_pixels, typical)
        job.position = -1  # not told yet: _dispatch sets it (0 if it starts), and submit returns it
        lane.waiting.append(job)
        self._dispatch()
        return job.position

    def _memory_admits(self, job: Job) -> bool:
        running = [j for lane in self.lanes.values() for j in lane.running]
        return not self.max_memory or not running or sum(j.memory for j in running) + job.memory <= self.max_memory

    def _dispatch(self) -> None:
        """Start every waiting job that may start: short lane first (fast work never waits)."""
        short, long_ = self.lanes[SHORT], self.lanes[LONG]
        for lane in (short, long_):
            while lane.waiting and not lane.full:
                job = lane.order()[0]
                if not self._memory_admits(job):
                    break
                if lane is short and self.share is not None and not self.share.may_start_short():
                    self._wake_in(self.share.wait_seconds())
                    break
                self._start(lane, job)
        for lane in (short, long_):
            self._announce_positions(lane)

    def _wake_in(self, seconds: float) -> None:
        if self._timer is None:
            def wake() -> None:
                self._timer = None
                self._dispatch()
            self._timer = asyncio.get_running_loop().call_later(seconds, wake)

    def _start(self, lane: _Lane, job: Job) -> None:
        lane.take(job)
        if job.position > 0:  # it waited: tell it that it starts now
            job.emit(job.make_queued(Queued(0, 0.0, lane.name)))
        job.position = 0
        if self.share is not None:
            if lane.name == SHORT:
                self.share.short_started()
            else:
                self.share.long_running(True)
        started = time.monotonic()
        future = asyncio.get_running_loop().run_in_executor(lane.executor, self._run, job)
        future.add_done_callback(lambda _f: self._ended(lane, job, time.monotonic() - started))

    def _ended(self, lane: _Lane, job: Job, seconds: float) -> None:
        lane.running.remove(job)
        lane.recent.append(seconds)
        if self.share is not None:
            if lane.name == SHORT:
                self.share.short_ended()
            else:
                self.share.long_running(False)
        self._dispatch()

    def withdraw(self, job: Job) -> bool:
        """The caller went away: drop a waiting job, or ask a running one to stop. True when the
        job was still waiting (it will never run)."""
        job.cancel.set()
        lane = self.lanes[job.lane]
        if job in lane.waiting:
            lane.waiting.remove(job)
            self._dispatch()
            return True
        return False

    def cancel(self, job: Job, reason: BaseException) -> None:
        """Stop a job for good (CancelJob): a waiting one ends now with `reason`, a running one
        within a step."""
        if self.withdraw(job):
            job._finish(reason)
        else:
            job.abort_reason = reason

    def _announce_positions(self, lane: _Lane) -> None:
        """Tell each waiting job of `lane` whose place changed its new position and the lane's
        estimate of its wait (a job just submitted, position -1, learns its own from submit)."""
        ahead = lane.active
        for i, job in enumerate(lane.order()):
            if job.position != i + ahead:
                told = job.position >= 0
                job.position = i + ahead
                if told:
                    job.emit(job.make_queued(Queued(job.position, lane.eta(job.position), lane.name)))

    @staticmethod
    def _run(job: Job) -> None:
        job.started = True
        share = current_share()
        # A large short job maps its large blocks, which are handed back as they are freed (see
        # large_blocks_mapped); a small one's memory is reused by the next (trimming it would cost
        # a 512 px painting 6 ms, and the next one its page faults). Long jobs trim at their end.
        large = job.lane == SHORT and job.memory > _TRIM_ABOVE
        try:
            with large_blocks_mapped() if large else contextlib.nullcontext():
                job.body(job.emit, job.cancel if share is None else _PausingCancel(job.cancel, share))
        except BaseException as exc:  # handed to the caller's stream, mapped to a status there
            job._finish(job.abort_reason or exc)
        else:
            job._finish(None)
        finally:
            job.body = _released  # drop the closures (and the images they hold) now
            if job.lane == LONG or large:  # a large job's heap is small now: its trim is short
                release_memory()

    def abort_all(self, reason: Callable[[Job], BaseException]) -> None:
        """Stop every job with `reason(job)` (shutdown): waiting ones at once, running ones within a step."""
        for lane in self.lanes.values():
            while lane.waiting:
                job = lane.waiting.popleft()
                job.cancel.set()
                job._finish(reason(job))
            for job in lane.running:
                job.abort_reason = reason(job)
                job.cancel.set()

    def _idle(self) -> bool:
        return not any(lane.waiting or lane.running for lane in self.lanes.values())

    async def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the queues and the workers to empty; True if they did."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._idle() and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return self._idle()

    async def close(self) -> None:
        for lane in self.lanes.values():
            for job in list(lane.waiting):
                self.withdraw(job)
            for job in lane.running:
                job.cancel.set()
        if self._timer is not None:
            self._timer.cancel()
        for lane in self.lanes.values():
            lane.executor.shutdown(wait=False, cancel_futures=True)
