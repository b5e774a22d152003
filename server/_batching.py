"""Dynamic batching of onnxruntime runs (#26), as Triton's dynamic batcher does it.

Short jobs run in several threads. When some of them call `run` on the same session within
`max_wait` seconds with inputs that can share one run, the first (the leader) waits for the others,
up to `max_batch` in all, and runs them as one batch; each caller gets its own rows back.

Inputs whose first dimension the model leaves free are concatenated along it. The others (the
26-style network's preset weights, the arbitrary transformer's style vector) must be equal, value
for value, for calls to share a run: the key holds their bytes.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

__all__ = ["BatchingSession"]


@dataclass
class _Batch:
    feeds: list[Mapping[str, np.ndarray]] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    closed: bool = False
    results: list[list[np.ndarray]] = field(default_factory=list)
    error: BaseException | None = None


class BatchingSession:
    """An onnxruntime session whose `run` joins concurrent compatible calls into one batch.
    Everything else (get_inputs, get_providers ...) is the session's."""

    def __init__(self, session: Any, *, max_batch: int, max_wait: float) -> None:
        self._session, self.max_batch, self.max_wait = session, max_batch, max_wait
        # An input is batched when its first dimension is free (a name, or unknown).
        self._batched = {i.name for i in session.get_inputs() if i.shape and not isinstance(i.shape[0], int)}
        self._open: dict[tuple, _Batch] = {}
        self._lock = threading.Lock()
        self.runs = 0  # session runs made (a batch is one)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def _key(self, output_names: Any, feeds: Mapping[str, np.ndarray]) -> tuple:
        parts: list[Any] = [tuple(output_names or ())]
        for name in sorted(feeds):
            a = np.asarray(feeds[name])
            if name in self._batched:
                parts.append((name, a.dtype.str, a.shape[1:]))
            else:
                parts.append((name, a.dtype.str, a.shape, hashlib.blake2b(a.tobytes(), digest_size=16).digest()))
        return tuple(parts)

    def run(self, output_names: Any, feeds: Mapping[str, np.ndarray], run_options: Any = None) -> list[np.ndarray]:
        if self.max_batch <= 1 or not self._batched:
            self.runs += 1
            return self._session.run(output_names, feeds, run_options)
        key = self._key(output_names, feeds)
        with self._lock:
            batch = self._open.get(key)
            leader = batch is None
            if leader:
                batch = self._open[key] = _Batch()
            index = len(batch.feeds)
            batch.feeds.append(feeds)
            if len(batch.feeds) >= self.max_batch:
                batch.full.set()
        if leader:
            batch.full.wait(self.max_wait)
            with self._lock:
                del self._open[key]  # later callers start a new batch
            self._run_batch(batch, output_names, run_options)
        else:
            batch.done.wait()
        if batch.error is not None:
            raise batch.error
        return batch.results[index]

    def _run_batch(self, batch: _Batch, output_names: Any, run_options: Any) -> None:
        try:
            rows = [len(np.asarray(f[next(iter(self._batched))])) for f in batch.feeds]
            merged = {name: (np.concatenate([f[name] for f in batch.feeds]) if name in self._batched
                             else batch.feeds[0][name]) for name in batch.feeds[0]}
            self.runs += 1
            outputs = self._session.run(output_names, merged, run_options)
            edges = np.cumsum([0] + rows)
            batch.results = [[o[a:b] for o in outputs] for a, b in zip(edges, edges[1:])]
        except BaseException as exc:  # every caller of the batch gets it
            batch.error = exc
        finally:
            batch.done.set()
