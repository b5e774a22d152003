"""How the long and the short lane share a device's CPU cores.

On a CPU both lanes would otherwise run at once on the same cores: torch's OpenMP threads for the
long job and onnxruntime's for the short one, four busy threads on two cores. OpenMP's barriers then
wait for preempted threads, and both slow down by more than half (measured in bench/bench_lanes.py).
So the cores are time-sliced instead, at a fine grain:

- while short work runs, the long job pauses at its next layer, forward or backward (global module
  hooks, active only in the long lane's threads), and at its next cancel check; short work then has
  every core and runs about as fast as on an idle server;
- short work may take at most `share` of the time while a long job is running, so a stream of
  short requests cannot starve the long job: its slowdown is at most 1 / (1 - share). The budget
  is a token bucket in seconds: `burst` seconds are there at the start, each second the long job
  runs earns share / (1 - share) seconds, and each second short work runs beside it spends one
  (as it runs: with several short jobs overlapping, none may ever be the last to end). A short
  job starts only when the bucket is not empty.

On CUDA, nothing pauses: the GPU interleaves onnxruntime's kernels with torch's by itself, and the
CPU threads only launch work.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import torch

__all__ = ["CpuShare", "pausable_thread", "install_pause_hooks"]

_local = threading.local()
_hooks_installed = False
_hooks_lock = threading.Lock()


class CpuShare:
    """The long lane's pause gate and the short lane's time budget (see the module's docstring).

    Every method but `pause_point` is called on the scheduler's event loop."""

    def __init__(self, share: float, burst: float = 2.0, clock: Any = time.monotonic) -> None:
        if not 0 < share < 1:
            raise ValueError(f"share must be between 0 and 1 (exclusive), not {share}")
        self.share, self.burst, self._clock = share, burst, clock
        self._rate = share / (1 - share)  # seconds of short work earned per second of long work
        self._balance = burst
        self._short = 0  # short jobs running
        self._long = False  # a long job is running
        self._since = clock()  # start of the current accounting interval
        self._cond = threading.Condition()
        self.paused_seconds = 0.0  # time the long lane spent paused (a metric)

    def _settle(self) -> None:
        """Account for the time since the last event: a running long job earns short time, short
        work running beside it spends it (as it runs: overlapping short jobs may never all end)."""
        now = self._clock()
        elapsed, self._since = now - self._since, now
        if not self._long:
            self._balance = self.burst  # an idle long lane owes nothing
        elif self._short:
            self._balance -= elapsed
            self.paused_seconds += elapsed
        else:
            self._balance = min(self.burst, self._balance + elapsed * self._rate)

    def long_running(self, running: bool) -> None:
        self._settle()
        self._long = running

    def may_start_short(self) -> bool:
        """Whether a short job may start now (always when no long job runs)."""
        self._settle()
        return not self._long or self._balance > 0

    def wait_seconds(self) -> float:
        """How long until the bucket holds time again (when may_start_short is False)."""
        self._settle()
        return max(0.0, -self._balance / self._rate) + 0.001

    def short_started(self) -> None:
        self._settle()
        with self._cond:
            self._short += 1

    def short_ended(self) -> None:
        self._settle()
        with self._cond:
            self._short -= 1
            if not self._short:
                self._cond.notify_all()

    def pause_point(self) -> None:
        """In the long lane's thread: wait while short work runs."""
        if not self._short:  # the common case, without taking the lock
            return
        with self._cond:
            while self._short:
                self._cond.wait(1.0)


def pausable_thread(share: CpuShare | None) -> None:
    """Mark the calling thread as the long lane's: its layers and cancel checks pause for short work
    (a ThreadPoolExecutor initializer)."""
    _local.share = share


def current_share() -> CpuShare | None:
    """The gate of the calling thread, when it is a long lane's."""
    return getattr(_local, "share", None)


def _before_layer(module: torch.nn.Module, _inputs: Any) -> None:
    share = getattr(_local, "share", None)
    if share is not None:
        share.pause_point()


def _after_layer(module: torch.nn.Module, _inputs: Any, output: Any) -> None:
    share = getattr(_local, "share", None)
    # Backward runs on the calling thread for CPU tensors, so a hook on each leaf layer's output
    # pauses the backward pass too (the forward pre-hook covers the forward one).
    if share is not None and isinstance(output, torch.Tensor) and output.requires_grad \
            and next(module.children(), None) is None:
        output.register_hook(lambda _grad: share.pause_point())


def install_pause_hooks() -> None:
    """Install (once per process) the global module hooks behind `pause_point`; they do nothing in
    threads that are not a long lane's."""
    global _hooks_installed
    with _hooks_lock:
        if not _hooks_installed:
            torch.nn.modules.module.register_module_forward_pre_hook(_before_layer)
            torch.nn.modules.module.register_module_forward_hook(_after_layer)
            _hooks_installed = True
