"""The SDK's job calls (GetJob, WatchJob, CancelJob, ListJobs) and re-attaching render streams,
mixed into DreamClient and AsyncDreamClient."""
from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Callable, Iterator

import grpc

from dreamrender.v1 import dreamrender_pb2 as pb

from ._errors import DreamError

__all__ = ["JobCalls", "AsyncJobCalls", "JOB_STATES", "REATTACH_SECONDS"]

JOB_STATES = {pb.JobState.Name(v).removeprefix("JOB_STATE_").lower(): v for v in pb.JobState.values() if v}
# How long a re-attaching stream keeps trying a server that is away (a restart takes seconds).
REATTACH_SECONDS = 120.0


def _state(state: str | int | None) -> int:
    if state is None or state == "":
        return 0
    if isinstance(state, int):
        return state
    try:
        return JOB_STATES[state.lower()]
    except KeyError:
        raise ValueError(f"state must be one of {', '.join(JOB_STATES)}, not {state!r}") from None


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


class JobCalls:
    """Sync job calls; the host class provides _stub, _md, _stream and _call."""

    _stub: Any

    def get_job(self, job_id: str, *, timeout: float | None = 30.0, metadata: Any = None) -> pb.Job:
        """A job's state, latest progress and frame, and its result (or error) once done."""
        return self._call(self._stub.GetJob, pb.GetJobRequest(job_id=job_id), timeout, metadata).job  # type: ignore[attr-defined]

    def cancel_job(self, job_id: str, *, timeout: float | None = 30.0, metadata: Any = None) -> pb.Job:
        """Ask a job to stop; returns it as it then stands."""
        return self._call(self._stub.CancelJob, pb.CancelJobRequest(job_id=job_id), timeout, metadata).job  # type: ignore[attr-defined]

    def list_jobs(self, *, state: str | int | None = None, page_size: int = 0, page_token: str = "",
                  timeout: float | None = 30.0, metadata: Any = None) -> pb.ListJobsResponse:
        """One page of the caller's jobs, newest first (`state`: "running", "succeeded", ...)."""
        req = pb.ListJobsRequest(state=_state(state), page_size=page_size, page_token=page_token)
        return self._call(self._stub.ListJobs, req, timeout, metadata)  # type: ignore[attr-defined]

    def watch_job(self, job_id: str, *, timeout: float | None = None, metadata: Any = None) -> Iterator[Any]:
        """A job's events, as a render call streams them: its current state, then live ones."""
        call = self._stub.WatchJob(pb.WatchJobRequest(job_id=job_id), timeout=timeout,
                                   metadata=self._md(metadata))  # type: ignore[attr-defined]
        return self._stream(call)  # type: ignore[attr-defined]

    def _reattaching(self, start: Callable[[float | None], Iterator[Any]], timeout: float | None) -> Iterator[Any]:
        """A render stream that, broken by UNAVAILABLE, calls again with the same request (and so
        the same request_id, which the server answers with the same job) until the server is back."""
        deadline = None if timeout is None else time.monotonic() + timeout
        give_up = time.monotonic() + REATTACH_SECONDS
        while True:
            try:
                yield from start(_remaining(deadline))
                return
            except DreamError as err:
                if err.code != grpc.StatusCode.UNAVAILABLE or time.monotonic() > give_up:
                    raise
            time.sleep(0.5)


class AsyncJobCalls:
    """asyncio job calls; the host class provides _stub, _md, _stream and _call."""

    _stub: Any

    async def get_job(self, job_id: str, *, timeout: float | None = 30.0, metadata: Any = None) -> pb.Job:
        return (await self._call(self._stub.GetJob, pb.GetJobRequest(job_id=job_id), timeout, metadata)).job  # type: ignore[attr-defined]

    async def cancel_job(self, job_id: str, *, timeout: float | None = 30.0, metadata: Any = None) -> pb.Job:
        return (await self._call(self._stub.CancelJob, pb.CancelJobRequest(job_id=job_id), timeout,
                                 metadata)).job  # type: ignore[attr-defined]

    async def list_jobs(self, *, state: str | int | None = None, page_size: int = 0, page_token: str = "",
                        timeout: float | None = 30.0, metadata: Any = None) -> pb.ListJobsResponse:
        req = pb.ListJobsRequest(state=_state(state), page_size=page_size, page_token=page_token)
        return await self._call(self._stub.ListJobs, req, timeout, metadata)  # type: ignore[attr-defined]

    def watch_job(self, job_id: str, *, timeout: float | None = None, metadata: Any = None) -> AsyncIterator[Any]:
        call = self._stub.WatchJob(pb.WatchJobRequest(job_id=job_id), timeout=timeout,
                                   metadata=self._md(metadata))  # type: ignore[attr-defined]
        return self._stream(call)  # type: ignore[attr-defined]

    async def _reattaching(self, start: Callable[[float | None], AsyncIterator[Any]],
                           timeout: float | None) -> AsyncIterator[Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        give_up = time.monotonic() + REATTACH_SECONDS
        while True:
            try:
                async for ev in start(_remaining(deadline)):
                    yield ev
                return
            except DreamError as err:
                if err.code != grpc.StatusCode.UNAVAILABLE or time.monotonic() > give_up:
                    raise
            await asyncio.sleep(0.5)
