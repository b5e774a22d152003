"""A job's record kept current from its render: what the worker thread writes to the store."""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Callable

from .store import (CANCELLED, FAILED, INTERRUPTED, RUNNING, SUCCEEDED, JobMissingError, JobRecord, JobStore,
                    StoreFullError, StoreUnavailableError)

__all__ = ["Journal"]

log = logging.getLogger(__name__)

# Progress is written at most this often (a tiny network does hundreds of steps a second); the
# last one is always written with the result. Frames and checkpoints come every few steps.
PROGRESS_INTERVAL = 0.25


class Journal:
    """Writes a job's state, latest progress and frame, best image and result to the store, and
    notices a cancel asked through another replica (CancelJob writes a flag; the job's own
    replica sees it at the next progress write and stops the job).

    Store errors are logged, never raised into the render: the caller's stream goes on.

    `deferred` (a short job, #26): the fields gather and reach the store in one write when the job
    ends. A 0.1 s painting otherwise made four writes (running, progress, frame, result) that cost
    about 4 ms of its request; nothing can watch it mid-way that would need them.
    """

    def __init__(self, store: JobStore, job_id: str, cancel: threading.Event, *,
                 encode_png: Callable[[Any], bytes] | None = None, deferred: bool = False,
                 record: JobRecord | None = None, on_unsaved: Callable[["Journal"], None] | None = None,
                 on_write: Callable[[str], None] | None = None) -> None:
        self.store, self.job_id, self.cancel = store, job_id, cancel
        self.encode_png = encode_png  # None: checkpoints are not kept (dreams start afresh anyway)
        self._last_write = 0.0
        self._progress = b""
        self._chunks: list[bytes] = []
        self._pending: dict[str, object] | None = {} if deferred else None
        # The store may be down, full, or lose the record (a Redis restarted empty): the record as
        # created and every field written since are kept to make it again, and the fields it
        # refused go with the next write; a refused last write is handed to `on_unsaved` (the
        # server's upkeep retries it), so a finished job's result reaches the store once it is back.
        self.record, self._known, self._unsaved = record, {}, {}
        self.on_unsaved, self._warned = on_unsaved, False
        self.on_write = on_write  # told the job's id after each write (wakes its watchers)

    def _update(self, final: bool = False, **fields: object) -> None:
        if self._pending is not None:
            self._pending.update(fields)
            if not final:
                return
            fields, self._pending = self._pending, {}
        self._known.update(fields)
        self._unsaved.update(fields)
        if not self.flush() and final and self.on_unsaved is not None:
            self.on_unsaved(self)

    def flush(self) -> bool:
        """Write what the store has not taken yet; whether it is all written."""
        if not self._unsaved:
            return True
        try:
            try:
                self.store.update(self.job_id, **self._unsaved)
            except JobMissingError:
                if self.record is None:
                    raise
                self.store.create(dataclasses.replace(self.record, **self._known), capped=False)
        except (StoreUnavailableError, StoreFullError, JobMissingError) as exc:
            if not self._warned:  # one line per job, not one per write
                log.warning("job %s: its record waits for the job store (%s)", self.job_id, exc)
                self._warned = True
            return False
        except Exception:
            log.exception("job %s: the job store refused an update", self.job_id)
            return False
        self._unsaved = {}
        if self.on_write is not None:
            self.on_write(self.job_id)
        if self._warned:
            log.info("job %s: its record is written again", self.job_id)
            self._warned = False
        return True

    def started(self) -> None:
        self._update(state=RUNNING)

    def response(self, r: Any) -> None:
        """A response the job sends its caller (a RenderDream/RenderStyle/WatchJob response)."""
        kind = r.WhichOneof("event")
        if kind == "progress":
            self._progress = r.progress.SerializeToString()
            now = time.monotonic()
            if now - self._last_write >= PROGRESS_INTERVAL:
                self._last_write = now
                self._update(progress=self._progress)
                self._check_cancel()
        elif kind == "frame":
            self._update(frame=r.frame.SerializeToString())
        elif kind == "result_chunk":
            self._chunks.append(r.result_chunk.data)
        elif kind == "result":
            result = type(r.result)()
            result.CopyFrom(r.result)
            if self._chunks:  # the image went out in chunks before this message: keep it whole
                result.image.data = b"".join(self._chunks)
            self._update(True, state=SUCCEEDED, result=result.SerializeToString(), progress=self._progress)

    def checkpoint(self, image: Any) -> None:
        """The best image so far (float array, (1, 3, H, W) in [0, 1]): kept for resuming."""
        if self.encode_png is not None:
            try:
                png = self.encode_png(image)
            except Exception:
                log.exception("job %s: cannot encode its checkpoint", self.job_id)
                return
            self._update(checkpoint=png)

    def ended(self, code: str, message: str) -> None:
        """The job stopped without a result (code: a grpc.StatusCode name)."""
        state = CANCELLED if code == "CANCELLED" else FAILED
        self._update(True, state=state, error_code=code, error_message=message, progress=self._progress)

    def interrupted(self, message: str) -> None:
        """The server stopped the job at shutdown: its checkpoint stays for GetJob and resuming."""
        self._update(True, state=INTERRUPTED, error_code="UNAVAILABLE", error_message=message,
                     progress=self._progress)

    def _check_cancel(self) -> None:
        try:
            seen = self.store.peek(self.job_id)
        except Exception:
            return
        if seen is not None and seen[2]:
            self.cancel.set()
