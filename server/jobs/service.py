"""The job RPCs' logic: ids and ownership checked, records turned into messages, watches polled.

Watching polls the store (a version number per record, read without the record's bytes) rather
than subscribing to the job in memory: the same code then follows a job that runs in this
process, in another replica sharing a Redis store, or that was resumed after a restart.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import re
from typing import Any, AsyncIterator, Awaitable, Callable

from dreamrender.errors import InvalidArgumentError, quoted
from dreamrender.v1 import dreamrender_pb2 as pb

from ..responses import result_responses
from .store import (CANCELLED, FAILED, INTERRUPTED, QUEUED, RUNNING, STATES, SUCCEEDED, JobEndedError, JobNotFoundError,
                    JobRecord, JobStore, StoreFullError, StoreUnavailableError)

__all__ = ["JobBook", "check_job_id", "check_request_id", "upkeep_round", "request_fingerprint", "retry_target", "page_offset",
           "page_token_for", "POLL_SECONDS", "DEFAULT_PAGE", "MAX_PAGE"]

log = logging.getLogger("dreamrender.server.servicer")

JOB_ID = re.compile(r"[0-9a-f]{16}")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
POLL_SECONDS = 0.1
DEFAULT_PAGE, MAX_PAGE = 50, 1000
_STATE_PB = {QUEUED: pb.JOB_STATE_QUEUED, RUNNING: pb.JOB_STATE_RUNNING, SUCCEEDED: pb.JOB_STATE_SUCCEEDED,
             FAILED: pb.JOB_STATE_FAILED, CANCELLED: pb.JOB_STATE_CANCELLED, INTERRUPTED: pb.JOB_STATE_INTERRUPTED}
_PB_STATE = {v: k for k, v in _STATE_PB.items()}


def check_job_id(job_id: str) -> str:
    if not JOB_ID.fullmatch(job_id):
        raise InvalidArgumentError("job_id", f"{quoted(job_id)} is not a job id",
                                   "16 lowercase hex digits, as the render's `accepted` message gives")
    return job_id


def check_request_id(request_id: str) -> str:
    if request_id and not REQUEST_ID.fullmatch(request_id):
        raise InvalidArgumentError("request_id", f"{quoted(request_id)} is not a usable idempotency key",
                                   "1 to 64 of A-Z a-z 0-9 . _ : -")
    return request_id


# Page tokens are opaque (AIP-158): base64url of "jobs:<offset>", checked whole on the way back, so
# that no digit string, huge number or non-ASCII digit reaches int() or the store.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,32}")
_TOKEN_BODY = re.compile(rb"jobs:(0|[1-9][0-9]{0,11})")


def page_token_for(offset: int) -> str:
    """The next_page_token that resumes a listing at `offset`."""
    return base64.urlsafe_b64encode(f"jobs:{offset}".encode()).decode().rstrip("=")


def page_offset(token: str) -> int:
    """The offset a page token stands for (0 for none); InvalidArgumentError naming page_token otherwise."""
    if not token:
        return 0
    body = None
    if _TOKEN.fullmatch(token):
        try:
            body = _TOKEN_BODY.fullmatch(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (binascii.Error, ValueError):
            body = None
    if body is None:
        raise InvalidArgumentError("page_token", f"{quoted(token[:40])}{'...' if len(token) > 40 else ''} is not a "
                                   "token this server gave", "empty, or a next_page_token from ListJobs")
    return int(body.group(1))


def request_fingerprint(request: Any) -> str:
    """What a retry's request must match: the request without `detach` and `request_id` (a retry
    may re-attach without detaching), deterministically serialised and hashed."""
    plain = type(request)()
    plain.CopyFrom(request)
    plain.detach, plain.request_id = False, ""
    return hashlib.sha256(plain.SerializeToString(deterministic=True)).hexdigest()[:32]


def retry_target(existing: JobRecord, kind: str, fingerprint: str) -> bool:
    """Whether a call with a used request_id follows the job it names (True) or starts afresh:
    a cancelled job, or an attached one a server stop interrupted, can never finish, so a retry
    runs again. InvalidArgumentError naming request_id when the key was used for another request
    (the same key must mean the same request, AIP-155)."""
    if existing.kind != kind or (existing.request_hash and existing.request_hash != fingerprint):
        what = existing.kind if existing.kind != kind else "request with other settings or images"
        raise InvalidArgumentError("request_id", f"{quoted(existing.request_id)} was used for a different "
                                   f"{what} (job {existing.id})", "a new request_id for a different request")
    return not (existing.state == CANCELLED or (existing.state == INTERRUPTED and not existing.detached))


async def upkeep_round(store: JobStore, server_id: str, every: float, resume: Callable[[], Awaitable[Any]],
                       unsaved: set, down: int) -> int:
    """One heartbeat of the store's upkeep: say this replica is alive, drop expired records, take
    over orphaned jobs (`resume`) and write the records the store refused while it was down
    (`unsaved` journals). Returns how many heartbeats in a row have now failed (`down` before):
    an outage is logged once when it starts and once when it ends, never a traceback a beat."""
    try:
        await asyncio.to_thread(store.beat, server_id, 3 * every)
        await asyncio.to_thread(store.expire)
        await resume()
        for journal in list(unsaved):
            if await asyncio.to_thread(journal.flush):
                unsaved.discard(journal)
    except (StoreUnavailableError, StoreFullError) as exc:
        if not down:
            log.warning("%s", exc)
        return down + 1
    except Exception:
        log.exception("job store upkeep failed")
        return down
    if down:
        log.info("the job store is back after %d failed heartbeats", down)
    return 0


def to_job(rec: JobRecord, *, full: bool = True) -> pb.Job:
    """A record as the Job message (`full`: with the result and checkpoint images)."""
    job = pb.Job(job_id=rec.id, kind=rec.kind, state=_STATE_PB.get(rec.state, pb.JOB_STATE_UNSPECIFIED), done=rec.done,
                 create_time=rec.created, update_time=rec.updated, request_id=rec.request_id, detached=rec.detached,
                 server_id=rec.server_id, resumed=rec.resumed)
    if rec.progress:
        job.progress.ParseFromString(rec.progress)
    if rec.frame:
        job.frame.ParseFromString(rec.frame)
    if rec.error_code:
        job.error.code, job.error.message = rec.error_code, rec.error_message
    if full and rec.result:
        job.result.ParseFromString(rec.result)
    if full and rec.checkpoint and rec.state != SUCCEEDED:
        job.checkpoint.data, job.checkpoint.media_type = rec.checkpoint, "image/png"
    return job


class JobBook:
    """GetJob, WatchJob, CancelJob and ListJobs over a store. `owner` is the caller's identity (its
    token's hash with tokens on, else its host); with `private` (tokens on) a caller reaches only
    its own jobs, else every job."""

    def __init__(self, store: JobStore, *, private: bool, max_message_bytes: int = 0) -> None:
        self.store, self.private, self.max_message_bytes = store, private, max_message_bytes
        # Watchers of jobs that run in this process wake when their journal writes (`changed`)
        # instead of at their next poll: a frame reaches a watcher in milliseconds, not up to
        # POLL_SECONDS later (#29: frames reach a browser within 50 ms). Jobs on other replicas
        # are still polled.
        self._wakers: dict[str, set[asyncio.Event]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def changed(self, job_id: str) -> None:
        """The job's record was written (callable from any thread): wake its watchers here."""
        if self._loop is not None and job_id in self._wakers:
            try:
                self._loop.call_soon_threadsafe(self._wake, job_id)
            except RuntimeError:  # the loop closed (the server stopped): nobody is watching
                pass

    def _wake(self, job_id: str) -> None:
        for waker in self._wakers.get(job_id, ()):
            waker.set()

    async def _io(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kw)  # store calls block (SQLite, Redis)

    async def lookup(self, job_id: str, owner: str) -> JobRecord:
        """The caller's job; NOT_FOUND for an unknown id and for another owner's job alike."""
        rec = await self._io(self.store.get, check_job_id(job_id))
        if rec is None or (self.private and rec.owner != owner):
            raise JobNotFoundError(job_id)
        return rec

    async def get(self, job_id: str, owner: str) -> pb.Job:
        """The job; an image too large for one message is left out (`image_in_chunks`: WatchJob
        delivers it in chunks), where it used to fail the call with RESOURCE_EXHAUSTED (#28 D15)."""
        job = to_job(await self.lookup(job_id, owner))
        if self.max_message_bytes and job.ByteSize() > self.max_message_bytes - 4096:
            job.result.image.data, job.checkpoint.data, job.image_in_chunks = b"", b"", True
        return job

    async def cancel(self, job_id: str, owner: str, cancel_here: Callable[[str], bool]) -> pb.Job:
        """Stop the job: here when this process runs or queues it (`cancel_here`), else by a flag
        in the store that the replica running it reads at its next progress write."""
        rec = await self.lookup(job_id, owner)
        if not rec.done:
            if not cancel_here(job_id):
                fields: dict[str, object] = {"cancel_requested": True}
                if rec.state in (QUEUED, INTERRUPTED):  # nothing runs it: it ends here
                    fields.update(state=CANCELLED, error_code="CANCELLED", error_message="cancelled by CancelJob")
                await self._io(self.store.update, job_id, **fields)
            for _ in range(50):  # a running job stops within a step; report where it then stands
                rec = await self.lookup(job_id, owner)
                if rec.done:
                    break
                await asyncio.sleep(POLL_SECONDS)
        return to_job(rec)

    async def list(self, owner: str, state: int, page_size: int, page_token: str) -> pb.ListJobsResponse:
        if page_size > MAX_PAGE:
            raise InvalidArgumentError("page_size", f"{page_size} is too many", f"1 to {MAX_PAGE} (0: {DEFAULT_PAGE})")
        if state and state not in _PB_STATE:
            raise InvalidArgumentError("state", f"unknown state {state}", [pb.JobState.Name(v) for v in _PB_STATE])
        size, offset = page_size or DEFAULT_PAGE, page_offset(page_token)
        recs = await self._io(self.store.list, owner if self.private else None, _PB_STATE.get(state), offset, size + 1)
        more = len(recs) > size
        return pb.ListJobsResponse(jobs=[to_job(r, full=False) for r in recs[:size]],
                                   next_page_token=page_token_for(offset + size) if more else "")

    async def watch(self, job_id: str, owner: str, response_type: type) -> AsyncIterator[Any]:
        """The job's events as `response_type` messages: accepted, its current progress and
        frame, then each change until the result (or its failure, raised as JobEndedError)."""
        rec = await self.lookup(job_id, owner)
        self._loop = asyncio.get_running_loop()
        waker = asyncio.Event()
        self._wakers.setdefault(rec.id, set()).add(waker)
        try:
            yield response_type(accepted=pb.Accepted(job_id=rec.id, server_id=rec.server_id))
            async for r in self._changes(rec, response_type, waker):
                yield r
        finally:
            watchers = self._wakers.get(rec.id, set())
            watchers.discard(waker)
            if not watchers:
                self._wakers.pop(rec.id, None)

    async def _changes(self, rec: JobRecord, response_type: type, waker: asyncio.Event) -> AsyncIterator[Any]:
        sent_progress = sent_frame = b""
        while True:
            if rec.progress and rec.progress != sent_progress:
                sent_progress = rec.progress
                yield response_type(progress=pb.Progress.FromString(rec.progress))
            if rec.frame and rec.frame != sent_frame:
                sent_frame = rec.frame
                yield response_type(frame=pb.Frame.FromString(rec.frame))
            if rec.state == SUCCEEDED:
                for r in result_responses(pb.Result.FromString(rec.result), response_type):
                    yield r
                return
            if rec.state in (FAILED, CANCELLED):
                raise JobEndedError(rec.error_code or "UNKNOWN", rec.error_message or f"job {rec.id} {rec.state}")
            if rec.state == INTERRUPTED and not rec.detached:  # nothing will run it again
                raise JobEndedError("ABORTED", f"job {rec.id} was interrupted by a server shutdown and its call "
                                               "was not detached; start it again")
            rec = await self._next(rec, waker)

    async def _next(self, rec: JobRecord, waker: asyncio.Event) -> JobRecord:
        """The record once its version moves on (polled without its bytes, or sooner when woken)."""
        while True:
            try:
                await asyncio.wait_for(waker.wait(), POLL_SECONDS)
            except asyncio.TimeoutError:
                pass
            waker.clear()
            seen = await self._io(self.store.peek, rec.id)
            if seen is None:
                raise JobNotFoundError(rec.id)  # expired meanwhile
            if seen[0] != rec.version:
                new = await self._io(self.store.get, rec.id)
                if new is None:
                    raise JobNotFoundError(rec.id)
                return new

assert set(_STATE_PB) == set(STATES)
