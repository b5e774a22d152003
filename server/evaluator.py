"""The feed-forward evaluator: onnxruntime sessions on cached ONNX exports of the feature nets.

Checkpoint scores are computed on the evaluator's own thread, so the torch loop never waits for
them; when checkpoints come faster than they can be scored, the waiting one is replaced by the
newer (the stream would otherwise fall ever further behind on slow machines).
"""
from __future__ import annotations

import collections
import concurrent.futures
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from dreamrender.client.scoring import Scorer, StyleTargets, StyleTerms
from dreamrender.models import ModelStore, export_onnx
from dreamrender.settings import DreamSettings, StyleSettings

from .engine.events import Checkpoint, Event, Result, Scores
from .engine.runtime import RenderCancelled
from .engine.sizing import EVAL_MAX_PIXELS, evaluate_memory
from .memory import trim_heap

if TYPE_CHECKING:  # only a type here: the evaluator never reads requests
    from .requests import EvaluateJob

__all__ = ["Evaluator", "CheckpointScorer", "EvaluateRun", "style_terms"]

log = logging.getLogger(__name__)
RESULT_WAIT_SECONDS = 5.0
# Checkpoints larger than EVAL_MAX_PIXELS are scored downscaled to it: onnxruntime's forward at
# 2048x1365 holds two 700 MB activations beside the render's own memory. The engine's exact
# loss is in the progress events; these scores then say how the picture is doing at that size,
# and the evaluator name says which ("onnxruntime:CPUExecutionProvider at 627x418").


def _bounded(image: np.ndarray) -> tuple[np.ndarray, str]:
    """The image to score (downscaled to EVAL_MAX_PIXELS when larger) and the name's suffix."""
    h, w = image.shape[-2:]
    if h * w <= EVAL_MAX_PIXELS:
        return image, ""
    import torch

    from .engine.imaging import resize_to

    k = (EVAL_MAX_PIXELS / (h * w)) ** 0.5
    size = (max(1, int(h * k)), max(1, int(w * k)))
    return resize_to(torch.from_numpy(image), size).numpy(), f" at {size[1]}x{size[0]}"


MAX_SESSIONS, MAX_EXPORTS = 4, 8


def _prune_exports(used: Path) -> None:
    """Mark `used` as just used and delete all but the MAX_EXPORTS most recently used exports beside
    it (the writable export folder; pre-built exports on a read-only volume are left alone)."""
    try:
        used.touch()
        files = sorted(used.parent.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[MAX_EXPORTS:]:
            if old != used:
                old.unlink(missing_ok=True)
    except OSError as exc:  # a read-only store: nothing to prune there
        log.debug("export cache not pruned: %s", exc)


def style_terms(s: StyleSettings) -> StyleTerms:
    """The scorer's view of a style render's layers and term weights."""
    return StyleTerms({x.layer: x.weight for x in s.content_layers}, {x.layer: x.weight for x in s.style_layers},
                      s.content_weight, s.style_weight, s.tv_weight)


def _lower_priority() -> None:
    """Run the evaluator thread at the lowest CPU priority (Linux: per-thread nice 19), so on a
    machine whose cores the torch loop keeps busy, scoring uses the slack instead of the render's
    time. Scores then arrive later, never the render."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):  # not Linux, or not permitted: run at normal priority
        pass


class Evaluator:
    """Scorers per (model, layers), built from exports cached in the model store."""

    def __init__(self, store: ModelStore, *, threads: int = 1, enabled: bool = True) -> None:
        self.store = store
        self.threads = threads
        self.enabled = enabled
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="evaluator", initializer=_lower_priority)
        self._scorers: collections.OrderedDict[tuple[str, tuple[str, ...]], Scorer] = collections.OrderedDict()
        self._lock = threading.Lock()

    def scorer(self, model: str, layers: Sequence[str]) -> Scorer:
        """The scorer for `model` cut after the deepest of `layers` (exported on first use).

        Every new set of layers is its own export and session, so both are kept least-recently
        used: at most MAX_SESSIONS sessions here and MAX_EXPORTS export files in the store's
        export folder (by last use; a caller naming ever new layer sets grew both without bound,
        #28 D26: 5 dreams added 146 MiB of files and 160 MB of RSS)."""
        key = (model, tuple(sorted(set(layers))))
        with self._lock:
            if key in self._scorers:
                self._scorers.move_to_end(key)
                return self._scorers[key]
            path = export_onnx(model, list(key[1]), store=self.store)
            _prune_exports(path)
            self._scorers[key] = Scorer(path, threads=self.threads)
            while len(self._scorers) > MAX_SESSIONS:
                self._scorers.popitem(last=False)
            return self._scorers[key]

    @property
    def sessions(self) -> int:
        """How many scorer sessions are held."""
        return len(self._scorers)

    @property
    def name(self) -> str:
        import onnxruntime as ort

        return "onnxruntime:" + ort.get_available_providers()[0]

    def dream_sink(self, sink: Callable[[Event], None], s: DreamSettings) -> Callable[[Event], None]:
        terms = [(t.layer, t.channels, t.weight) for t in s.terms]

        def score(image: np.ndarray) -> tuple[dict[str, float], str]:
            scorer = self.scorer(s.model, [t[0] for t in terms])
            image, at = _bounded(image)
            return {"score": scorer.dream_score(image, terms, objective=s.objective)}, at

        return CheckpointScorer(self, sink, score) if self.enabled else sink

    def style_sink(self, sink: Callable[[Event], None], s: StyleSettings, content: np.ndarray,
                   styles: Sequence[np.ndarray]) -> Callable[[Event], None]:
        if not styles:  # feed-forward presets: no style image to score against
            return sink
        terms = style_terms(s)
        targets: dict[tuple[int, int], StyleTargets] = {}

        def score(image: np.ndarray) -> tuple[dict[str, float], str]:
            scorer = self.scorer(s.model, list(terms.content_layers) + list(terms.style_layers))
            image, at = _bounded(image)
            hw = tuple(image.shape[-2:])
            if hw not in targets:  # once per scale
                targets[hw] = scorer.style_targets(content, styles, hw, style_weights=[x.weight for x in s.styles],  # type: ignore[arg-type]
                                                   style_scales=[x.scale for x in s.styles], terms=terms)
            return scorer.candidate_terms(image, targets[hw]), at  # type: ignore[index]

        # A style render waits for each checkpoint's scores, then hands back the heap's free pages
        # (#28 acceptance 5). Scored beside the render, the scorer's activations landed wherever
        # the one kept heap had room and pushed its top up at every checkpoint: a whole 512 px
        # render peaked at 1162-1201 MiB. Scored between two of the render's steps, they reuse
        # the space the render has just freed (1026-1061 MiB); trimmed after, 966 MiB. Each trim
        # took 14-43 ms (glibc's arena lock is held meanwhile, which health checks can wait on).
        # Dreams check every few steps and score as dearly as a step, so theirs stay beside.
        return CheckpointScorer(self, sink, score, wait=True) if self.enabled else sink

    @staticmethod
    def unscored(sink: Callable[[Event], None]) -> Callable[[Event], None]:
        """The sink as it is: checkpoints pass through unscored."""
        return sink

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class CheckpointScorer:
    """A job's event sink: Checkpoint events go to the evaluator thread as well as on (the job
    keeps the latest for resuming), the rest pass through.

    At most one checkpoint waits while another is scored: a newer one replaces the waiting one
    (the stream never falls behind, and the last checkpoint is always scored). The Result waits
    for the scoring in flight, so the stream still ends with the result. With `wait`, the
    render's thread (the one that sends the checkpoint) waits for its scores before going on.
    """

    def __init__(self, evaluator: Evaluator, sink: Callable[[Event], None],
                 score: Callable[[np.ndarray], tuple[dict[str, float], str]], *, wait: bool = False) -> None:
        self.evaluator, self.sink, self.score, self.wait = evaluator, sink, score, wait
        self._lock = threading.Lock()
        self._waiting: Checkpoint | None = None
        self._worker: concurrent.futures.Future | None = None
        self._draining = False
        self._closed = False
        self.skipped = 0
        self.scored = 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, Checkpoint):
            with self._lock:
                if self._waiting is not None:
                    self.skipped += 1
                self._waiting = event
                if not self._draining:  # decided under the lock: _drain clears it under the lock too
                    self._draining = True
                    self._worker = self.evaluator.pool.submit(self._drain)
                worker = self._worker
            self.sink(event)
            if self.wait and worker is not None:
                concurrent.futures.wait([worker])  # _drain logs its own failures
                trim_heap()  # what the scorer freed, before the render takes the heap again
            return
        if isinstance(event, Result) and self._worker is not None:
            # Once the render is done its cores are free, so the last scores come quickly; but the
            # result never waits long for them: whatever is not scored by then is dropped.
            try:
                self._worker.result(timeout=RESULT_WAIT_SECONDS)
            except concurrent.futures.TimeoutError:
                log.info("checkpoint scores still pending at the result: dropped")
            except Exception:  # scoring is best effort; the render's result must still arrive
                log.exception("checkpoint scoring failed")
            with self._lock:
                self._closed = True
                self._waiting = None
        self.sink(event)

    def _drain(self) -> None:
        while True:
            with self._lock:
                ev, self._waiting = self._waiting, None
                if ev is None:
                    self._draining = False
                    return
            try:
                values, at = self.score(ev.image)
            except Exception:
                log.exception("checkpoint scoring failed at step %d", ev.step)
                continue
            with self._lock:
                if self._closed:  # the result has gone out: the stream is over
                    return
                self.scored += 1
                self.sink(Scores(ev.step, ev.stage_index, values, self.evaluator.name + at))


class EvaluateRun:
    """One Evaluate call as a job of the short lane (#28 D20, D24): it waits its turn in that lane's
    queue, counts its estimated memory in admission, runs on a lane worker at normal priority (the
    evaluator's own thread, at nice 19, stays with checkpoint scoring, where Evaluate once waited
    17-79 s behind renders) and stops between candidates when its call ends."""

    def __init__(self, evaluator: Evaluator, job: EvaluateJob) -> None:
        self.evaluator, self.job = evaluator, job
        self.values: list[dict[str, float]] = []
        sizes = [tuple(c.shape[-2:]) for c in job.candidates]
        self.pixels = sum(h * w for h, w in sizes)  # what the waiting call holds, decoded
        self.memory = evaluate_memory(sizes)

    def body(self, _emit: Callable[[object], None], cancel: threading.Event) -> None:
        s = self.job.settings
        terms = style_terms(s)

        def before_each(i: int) -> None:
            if cancel.is_set():
                raise RenderCancelled(f"Evaluate stopped before candidate {i}: its call ended")

        scorer = self.evaluator.scorer(s.model, list(terms.content_layers) + list(terms.style_layers))
        self.values = scorer.style_terms(self.job.content, self.job.styles, self.job.candidates, terms=terms,
                                         style_weights=[x.weight for x in s.styles],
                                         style_scales=[x.scale for x in s.styles], before_each=before_each)
