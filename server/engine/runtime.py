"""Run-time pieces both engines share: cancellation, the progress clock, device and autocast choice."""
from __future__ import annotations

import contextlib
import time
from typing import Protocol

import torch

__all__ = ["RenderCancelled", "ServerShuttingDown", "CancelToken", "check_cancel", "WorkClock", "resolve_device", "autocast_for"]


class RenderCancelled(Exception):
    """The caller cancelled the render, or its deadline passed."""


class ServerShuttingDown(RenderCancelled):
    """The server stopped the render because it is shutting down (UNAVAILABLE: retry elsewhere)."""


class CancelToken(Protocol):
    def is_set(self) -> bool: ...


def check_cancel(cancel: CancelToken | None) -> None:
    if cancel is not None and cancel.is_set():
        raise RenderCancelled("render cancelled")


class WorkClock:
    """Elapsed time and ETA over units of work of unequal cost (pixels x steps)."""

    def __init__(self, total_work: float) -> None:
        self.start = time.perf_counter()
        self.total = max(total_work, 1e-9)
        self.done = 0.0

    def add(self, work: float) -> None:
        self.done += work

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def eta(self) -> float:
        if self.done <= 0:
            return 0.0
        return max(0.0, self.elapsed / self.done * (self.total - self.done))


def resolve_device(name: str = "auto") -> torch.device:
    """"auto": CUDA when present, else CPU. Anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """fp16 autocast on CUDA only: on the CPU it is slower and changes results."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()
