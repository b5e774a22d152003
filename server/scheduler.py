"""Job scheduling: a bounded queue and one worker thread per device, off the asyncio loop."""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import threading
import time
import uuid
from typing import Any, AsyncIterator, Callable

from .engine.events import Queued
from .memory import release_memory

__all__ = ["QueueFullError", "QueuedPixelsError", "CallerLimitError", "Job", "Scheduler"]

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
                 caller: str = "", job_id: str = "") -> None:
        self.id = job_id or uuid.uuid4().hex[:16]  # a resumed job keeps its id
        self.body = body
        self.rpc = rpc
        self.caller = caller  # who asked: fairness is per caller
        self.pixels = pixels  # decoded image pixels the job holds until it runs
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


_LATEST_WINS = ("progress", "frame", "scores")
_CALLERS_KEPT = 1024
_BACKLOG = 8


def _kind(item: Any) -> str | None:
    """The event kind of a response message (None for the end marker or an error)."""
    which = getattr(item, "WhichOneof", None)
    return which("event") if which is not None else None


class Scheduler:
    """Runs jobs one at a time on a device; at most `max_queue` jobs wait behind the running one.

    Waiting callers are served in turn: the next job is the oldest one of the caller who was served
    longest ago (or never), so one caller's backlog does not hold the others back. A caller may
    have at most `max_jobs_per_caller` jobs running or waiting (0: no cap)."""

    def __init__(self, device: str, *, max_queue: int = 16, max_queued_pixels: int = 0,
                 max_jobs_per_caller: int = 0) -> None:
        self.device = device
        self.max_queue = max_queue
        self.max_queued_pixels = max_queued_pixels  # 0: no budget
        self.max_jobs_per_caller = max_jobs_per_caller
        self._served: dict[str, int] = {}  # caller -> turn number of its last job started
        self._turn = 0
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"render-{device}")
        self._waiting: collections.deque[Job] = collections.deque()
        self._running: Job | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._recent: collections.deque[float] = collections.deque(maxlen=20)

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def active(self) -> int:
        # A job whose body has ended is only releasing memory: a newcomer is next, at position 0.
        return 1 if self._running is not None and not self._running.finished else 0

    def submit(self, job: Job) -> int:
        """Queue `job`; return its position (0 = starts now). Raises QueueFullError."""
        self._ensure_started()
        busy = self._running is not None or bool(self._waiting)
        typical = sum(self._recent) / len(self._recent) if self._recent else 30.0
        if len(self._waiting) >= self.max_queue and self._running is not None:
            raise QueueFullError(self.max_queue, typical)
        if self.max_jobs_per_caller and self._held_by(job.caller) >= self.max_jobs_per_caller:
            raise CallerLimitError(self.max_jobs_per_caller, typical)
        queued = sum(j.pixels for j in self._waiting)
        if busy and self.max_queued_pixels and queued + job.pixels > self.max_queued_pixels:
            raise QueuedPixelsError(queued, job.pixels, self.max_queued_pixels, typical)
        self._waiting.append(job)
        self._announce_positions(job)
        assert self._wake is not None
        self._wake.set()
        return job.position

    def _held_by(self, caller: str) -> int:
        running = self.active and self._running is not None and self._running.caller == caller
        return int(running) + sum(j.caller == caller for j in self._waiting)

    def _order(self) -> list[Job]:
        """The waiting jobs in the order they will start (served in turn; see the class)."""
        served, waiting, order = dict(self._served), list(self._waiting), []
        turn = self._turn
        while waiting:
            nxt = min(waiting, key=lambda j: served.get(j.caller, -1))  # min keeps arrival order on ties
            waiting.remove(nxt)
            order.append(nxt)
            turn += 1
            served[nxt.caller] = turn
        return order

    def withdraw(self, job: Job) -> bool:
        """The caller went away: drop a waiting job, or ask a running one to stop. True when the
        job was still waiting (it will never run)."""
        job.cancel.set()
        if job in self._waiting:
            self._waiting.remove(job)
            self._announce_positions()
            return True
        return False

    def cancel(self, job: Job, reason: BaseException) -> None:
        """Stop a job for good (CancelJob): a waiting one ends now with `reason`, a running one
        within a step."""
        if self.withdraw(job):
            job._finish(reason)
        else:
            job.abort_reason = reason

    def _ensure_started(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop())

    def _announce_positions(self, new: Job | None = None) -> None:
        """Tell each waiting job whose place changed its new position (`new` learns it from submit)."""
        for i, job in enumerate(self._order()):
            if job.position != i + self.active or job is new:
                job.position = i + self.active
                if job is not new:
                    job.emit(job.make_queued(Queued(job.position)))

    async def _loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            job = self._order()[0]
            self._waiting.remove(job)
            self._turn += 1
            self._served[job.caller] = self._turn
            if len(self._served) > _CALLERS_KEPT:  # forget the callers served longest ago
                for caller in sorted(self._served, key=self._served.__getitem__)[:_CALLERS_KEPT // 2]:
                    del self._served[caller]
            self._running = job
            if job.position:  # it waited: tell it that it starts now
                job.position = 0
                job.emit(job.make_queued(Queued(0)))
            self._announce_positions()
            started = time.monotonic()
            try:
                await loop.run_in_executor(self._executor, self._run, job)
            finally:
                self._running = None
                self._recent.append(time.monotonic() - started)

    @staticmethod
    def _run(job: Job) -> None:
        job.started = True
        try:
            job.body(job.emit, job.cancel)
        except BaseException as exc:  # handed to the caller's stream, mapped to a status there
            job._finish(job.abort_reason or exc)
        else:
            job._finish(None)
        finally:
            job.body = _released  # drop the closures (and the images they hold) now
            release_memory()

    def abort_all(self, reason: Callable[[Job], BaseException]) -> None:
        """Stop every job with `reason(job)` (shutdown): waiting ones at once, the running one within a step."""
        while self._waiting:
            job = self._waiting.popleft()
            job.cancel.set()
            job._finish(reason(job))
        if self._running is not None:
            self._running.abort_reason = reason(self._running)
            self._running.cancel.set()

    async def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the queue and the worker to empty; True if they did."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self._waiting or self._running is not None) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return not self._waiting and self._running is None

    async def close(self) -> None:
        for job in list(self._waiting):
            self.withdraw(job)
        if self._running is not None:
            self._running.cancel.set()
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
