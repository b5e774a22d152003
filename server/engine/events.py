"""Render events: one frozen dataclass per kind. `dreamrender.server.responses` is the one place
they become protobuf; the engines only ever create them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Union

import numpy as np

__all__ = ["Accepted", "Queued", "Progress", "Frame", "Checkpoint", "AnimationFrame", "Scores", "Result", "RenderStats",
           "TrainingCheckpoint", "Event", "EventSink"]


@dataclass(frozen=True)
class Accepted:
    job_id: str
    queue_position: int
    server_id: str = ""


@dataclass(frozen=True)
class Queued:
    queue_position: int
    eta_seconds: float = 0.0  # the lane's estimate of the wait (0: starting now, or no estimate)
    lane: str = ""  # "long" or "short" (#26)


@dataclass(frozen=True)
class Progress:
    stage: str  # "octave" or "scale"
    stage_index: int
    stage_count: int
    step: int  # steps done over the whole render
    total_steps: int
    values: Mapping[str, float]
    elapsed_seconds: float
    eta_seconds: float
    precision: str = "fp32"  # what the network runs in ("auto" resolved)
    terms: tuple = ()  # a dream's DreamTerms as run (strongest-K resolved), in its first progress event only


@dataclass(frozen=True, eq=False)
class Frame:
    image: np.ndarray  # uint8 (H, W, 3) RGB, already downscaled for preview
    step: int
    score: float
    stage: str
    stage_index: int


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A checkpoint image at full size, for the feed-forward evaluator (never sent as such)."""

    image: np.ndarray  # float32 (1, 3, H, W) RGB in [0, 1]: the image the loss/score is of
    step: int
    stage_index: int


@dataclass(frozen=True, eq=False)
class AnimationFrame:
    """A finished frame of a zoom animation at full size, for the server's animation encoder
    (never sent as such; its preview goes out as a Frame)."""

    image: np.ndarray  # uint8 (H, W, 3) RGB
    index: int
    count: int


@dataclass(frozen=True, eq=False)
class TrainingCheckpoint:
    """A training run's whole state (networks, optimisers, step), to resume it from (never sent as such)."""

    state: Mapping
    step: int


@dataclass(frozen=True)
class Scores:
    """The evaluator's loss/score values for a checkpoint."""

    step: int
    stage_index: int
    values: Mapping[str, float]
    evaluator: str


@dataclass(frozen=True)
class RenderStats:
    width: int
    height: int
    steps: int
    elapsed_seconds: float
    model: str
    device: str
    seed: int
    values: Mapping[str, float] = field(default_factory=dict)
    precision: str = "fp32"


@dataclass(frozen=True, eq=False)
class Result:
    image: np.ndarray  # uint8 (H, W, 3) RGB at full size
    stats: RenderStats
    encoded: tuple[bytes, str] | None = None  # (bytes, media type) made by the server: an animation


Event = Union[Accepted, Queued, Progress, Frame, Checkpoint, AnimationFrame, Scores, Result, TrainingCheckpoint]
EventSink = Callable[[Event], None]
