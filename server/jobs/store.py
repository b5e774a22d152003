"""What a job store keeps, and the one small interface both stores implement.

A record is one job: who owns it, the request that started it (serialized, so a detached job can
run again after a restart), where it stands, and the bytes a caller reads back: the latest
progress and frame (serialized protobuf), the best image so far (PNG, for resuming) and the
result. Stores are called from the render worker and the event loop's executor threads: their
methods are blocking and thread-safe.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Protocol, Sequence

__all__ = ["JobRecord", "JobStore", "StoreFullError", "JobTooLargeError", "StoreUnavailableError",
           "StoreOutOfSpaceError", "JobMissingError", "JobNotFoundError", "JobEndedError", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED",
           "CANCELLED", "INTERRUPTED", "STATES", "FINAL_STATES", "LIST_FIELDS",
           "BLOB_FIELDS", "RECORD_OVERHEAD"]

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "running", "succeeded", "failed", "cancelled", "interrupted")
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED)
FINAL_STATES = (SUCCEEDED, FAILED, CANCELLED)


@dataclasses.dataclass
class JobRecord:
    """One job as stored. Byte fields are empty until there is something to keep."""

    id: str
    kind: str  # "RenderDream" / "RenderStyle"
    owner: str = ""  # the caller's identity (a token hash) when tokens are on; "" otherwise
    state: str = QUEUED
    request: bytes = b""  # the serialized render request
    request_id: str = ""
    request_hash: str = ""  # what a retry with the same request_id must match (the request, without detach)
    detached: bool = False
    server_id: str = ""
    created: float = dataclasses.field(default_factory=time.time)
    updated: float = dataclasses.field(default_factory=time.time)
    progress: bytes = b""  # serialized pb.Progress
    frame: bytes = b""  # serialized pb.Frame
    checkpoint: bytes = b""  # PNG of the best image so far
    result: bytes = b""  # serialized pb.Result
    error_code: str = ""
    error_message: str = ""
    cancel_requested: bool = False
    resumed: int = 0
    version: int = 0  # bumped by every update: watchers poll for a change

    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def size(self) -> int:
        """Bytes the record holds (what the store's size cap counts)."""
        return sum(len(getattr(self, name)) for name in BLOB_FIELDS) + len(self.error_message) + RECORD_OVERHEAD


class StoreFullError(RuntimeError):
    """The store holds its size cap: new detached jobs are refused (RESOURCE_EXHAUSTED) until
    finished ones expire; finished results are never dropped before their TTL to make room."""

    def __init__(self, used: int, cap: int) -> None:
        self.used, self.cap = used, cap
        super().__init__(f"the job store is full ({used / 2**20:.1f} MiB of its {cap / 2**20:.0f} MiB cap); "
                         f"finished jobs expire after the server's --job-ttl")


class JobTooLargeError(StoreFullError):
    """One detached job alone is over the store's cap: no wait would make room for it."""

    def __init__(self, size: int, cap: int) -> None:
        self.used, self.cap = size, cap
        RuntimeError.__init__(self, f"the job alone ({size / 2**20:.1f} MiB with its images) is over the job "
                                    f"store's {cap / 2**20:.0f} MiB cap (--job-store-max-mb); send smaller images, "
                                    "or do not detach it")


class StoreUnavailableError(RuntimeError):
    """The job store cannot be reached or read (UNAVAILABLE): what needs it is refused, naming it;
    attached renders run on, and their records are written once it is back."""

    def __init__(self, store: str, cause: str) -> None:
        super().__init__(f"the job store ({store}) is unavailable: {cause}; renders that are not detached "
                         "still run, while detaching, re-attaching and the job calls wait for it")


class StoreOutOfSpaceError(StoreFullError):
    """The store's own memory or disk is full (Redis maxmemory, a full disk): RESOURCE_EXHAUSTED."""

    def __init__(self, store: str, cause: str) -> None:
        self.used, self.cap = 0, 0
        RuntimeError.__init__(self, f"the job store ({store}) is full: {cause}")


class JobMissingError(LookupError):
    """An update found no record to update (the store lost it: a Redis restarted empty)."""


class JobNotFoundError(LookupError):
    """No such job for this caller (NOT_FOUND: also for another owner's job, so ids leak nothing)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"no job {job_id!r}")


class JobEndedError(RuntimeError):
    """A watched job that ended without a result: its status code (a grpc.StatusCode name) and message."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class JobStore(Protocol):
    """The store interface (embedded SQLite, or Redis shared by replicas)."""

    ttl: float

    def create(self, record: JobRecord, *, capped: bool) -> None:
        """Add a new record; with `capped`, refuse it (StoreFullError) when the store is full."""

    def get(self, job_id: str) -> JobRecord | None: ...

    def peek(self, job_id: str) -> tuple[int, str, bool] | None:
        """(version, state, cancel_requested) without the record's bytes (what pollers read)."""

    def find(self, owner: str, request_id: str) -> JobRecord | None:
        """The job `owner` started with `request_id` (within its TTL), if any."""

    def update(self, job_id: str, **fields: object) -> None:
        """Set fields of a record (and bump its version and update time); JobMissingError when
        there is no such record (never a partial one made of these fields)."""

    def list(self, owner: str | None, state: str | None, offset: int, limit: int) -> list[JobRecord]:
        """Records newest first (all owners when `owner` is None), without their large bytes."""

    def unfinished(self) -> list[JobRecord]:
        """Records left queued, running or interrupted, by any server (oldest first), without
        their large bytes (LIST_FIELDS): the upkeep sweep reads them every heartbeat."""

    def claim(self, job_id: str, holder: str, server_id: str) -> bool:
        """Make `server_id` the job's server if `holder` still is (atomic); True if it did."""

    def beat(self, server_id: str, ttl: float) -> None:
        """Say that `server_id` is alive for `ttl` seconds (0: it is stopping; its unfinished jobs
        may be taken over at once)."""

    def alive(self, server_id: str) -> bool:
        """Whether `server_id` said it is alive within its ttl."""

    def expire(self) -> int:
        """Drop finished records older than the TTL; return how many."""

    def close(self) -> None: ...


# The record's byte fields, and a fixed allowance for the rest of it: what the size cap counts.
BLOB_FIELDS: Sequence[str] = ("request", "progress", "frame", "checkpoint", "result")
RECORD_OVERHEAD = 256
LIST_FIELDS: Sequence[str] = ("checkpoint", "result", "request")  # left out of list() and unfinished() records
