"""The bodies of TrainGenerator and RenderSample jobs: engines wired to the store and the metrics.

A training run's state (both networks, their optimisers, the step) is saved at each epoch's end
to `<store>/generators/<namespace>/.<name>.training.pt`, beside where the generator will go; a
job resumed after a restart continues from it. A fresh request for the same name starts over.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

import torch

from dreamrender.models import GeneratorInfo, GeneratorStore, ModelStore, is_available, get_spec

from .engine.events import Event, Scores, TrainingCheckpoint
from .engine.feedforward import onnx_session
from .engine.gan import train_gan
from .engine.sampling import render_samples
from .gan_metrics import FidReference, digit_classifier, fid_cache, scorer
from .requests import SampleJob, TrainJob

__all__ = ["train_body", "sample_body", "checkpoint_path", "Sessions"]

log = logging.getLogger(__name__)
Sink = Callable[[Event], None]


def checkpoint_path(store: ModelStore, namespace: str, name: str) -> Path:
    return store.root / "generators" / namespace / f".{name}.training.pt"


class Sessions:
    """onnxruntime sessions of generators, by file (and its mtime: a retrained generator is reloaded)."""

    def __init__(self, wrap: Callable[[Any], Any] = lambda session: session) -> None:
        self._wrap = wrap  # dynamic batching, when on
        self._sessions: dict[tuple[str, float], Any] = {}
        self._lock = threading.Lock()

    def get(self, path: Path) -> Any:
        key = (str(path), path.stat().st_mtime)
        with self._lock:
            if key not in self._sessions:
                self._sessions = {k: v for k, v in self._sessions.items() if k[0] != key[0]}
                self._sessions[key] = self._wrap(onnx_session(path.read_bytes()))
            return self._sessions[key]


def _save_state(path: Path, state: dict, settings_key: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"settings": settings_key, "state": state}, tmp)
    tmp.replace(path)


def _resume_state(path: Path, settings_key: dict) -> dict | None:
    """The saved state when it is of this very request's settings, else None."""
    if not path.is_file():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    return saved["state"] if saved.get("settings") == settings_key else None


def _metrics(job: TrainJob, store: ModelStore, inception: Callable[[], Any] | None, device: torch.device):
    """The per-epoch scorer: the digit score for grey MNIST runs (when mnist_full, whose test
    digits train the scorer, is in the store), FID when asked and Inception v3 is in the store
    (FID is skipped, and the log says so, when it is not)."""
    s = job.settings
    judged = s.dataset != "images" and s.image_channels == 1 and is_available(get_spec("mnist_full"), store)
    digits = digit_classifier(store) if judged else None  # trained on mnist_full's test digits
    fid_ref = None
    if s.fid_samples and inception is not None:
        count = min(s.fid_samples, len(job.data.images))
        cache = fid_cache(store, s.dataset, s.size, s.image_channels, count) if s.dataset != "images" else None
        fid_ref = FidReference(inception(), job.data.images, count, cache=cache)
    elif s.fid_samples:
        log.warning("no FID for %s: inception_v3 is not in the store (dreamctl models pull inception_v3)", s.name)
    holder: dict[str, Any] = {}

    @torch.no_grad()
    def sample(n: int) -> torch.Tensor:
        g = holder["g"]
        z = torch.randn(n, s.latent, generator=torch.Generator().manual_seed((s.seed + 2) % 2**63)).to(device)
        y = torch.eye(g.classes, device=device)[torch.arange(n) % g.classes] if g.classes else None
        return torch.cat([g(zb, None if y is None else y[i * 250:(i + 1) * 250]).cpu()
                          for i, zb in enumerate(z.split(250))])

    score = scorer(sample, fid_ref=fid_ref, fid_samples=s.fid_samples, digits=digits)

    def per_epoch(g: Any, epoch: int) -> dict:
        holder["g"] = g
        return dict(score())

    return per_epoch if (digits is not None or fid_ref is not None) else None


def train_body(job: TrainJob, *, store: ModelStore, namespace: str, device: torch.device, resume: bool,
               inception: Callable[[], Any] | None) -> Callable[[Sink, threading.Event], None]:
    """The job body of a TrainGenerator request; `namespace` is where its generator goes."""
    s = job.settings
    key = dataclasses.asdict(s) | {"images": len(job.data.images)}  # asdict turns the preview into a dict too
    state_file = checkpoint_path(store, namespace, s.name)

    def body(sink: Sink, cancel: threading.Event) -> None:
        start = _resume_state(state_file, key) if resume else None
        if start is not None:
            log.info("training of %s continues from its saved step %d", s.name, start["step"])
        last: dict[str, float] = {}

        def events(e: Event) -> None:
            if isinstance(e, TrainingCheckpoint):
                _save_state(state_file, e.state, key)
                return
            if isinstance(e, Scores):
                last.update(e.values)
            sink(e)

        g, result = train_gan(job.data.images, job.data.labels, settings=s, on_event=events, cancel=cancel,
                              device=device, resume=start, score=_metrics(job, store, inception, device))
        info = GeneratorInfo(name=s.name, latent=s.latent, channels=s.image_channels, size=s.size,
                             classes=g.classes, description=f"DCGAN trained on {s.dataset}, {result.stats.steps} steps",
                             metrics=dict(last), created=time.time())
        GeneratorStore(store).save(g, info, namespace)
        state_file.unlink(missing_ok=True)
        sink(dataclasses.replace(result, stats=dataclasses.replace(result.stats,
                                                                   values=dict(result.stats.values) | last)))

    return body


def sample_body(job: SampleJob, sessions: Sessions) -> Callable[[Sink, threading.Event], None]:
    def body(sink: Sink, cancel: threading.Event) -> None:
        render_samples(sessions.get(job.onnx), settings=job.settings, latent=job.info.latent,
                       classes=job.info.classes, name=job.info.name, on_event=sink, cancel=cancel)

    return body


def inception_loader(store: ModelStore, cache_get: Callable[[str], Any]) -> Callable[[], Any] | None:
    """The Inception v3 FeatureNet getter for FID, or None when its weights are not in the store."""
    return (lambda: cache_get("inception_v3")) if is_available(get_spec("inception_v3"), store) else None
