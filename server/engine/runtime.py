"""Run-time pieces both engines share: cancellation, the progress clock, device and autocast choice."""
from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import Protocol

import torch

__all__ = ["RenderCancelled", "ServerShuttingDown", "CancelToken", "check_cancel", "NonFiniteError", "check_finite", "WorkClock", "resolve_device", "autocast_for",
           "native_bf16", "resolve_precision"]

log = logging.getLogger("dreamrender.engine")


class RenderCancelled(Exception):
    """The caller cancelled the render, or its deadline passed."""


class ServerShuttingDown(RenderCancelled):
    """The server stopped the render because it is shutting down (UNAVAILABLE: retry elsewhere)."""


class CancelToken(Protocol):
    def is_set(self) -> bool: ...


def check_cancel(cancel: CancelToken | None) -> None:
    if cancel is not None and cancel.is_set():
        raise RenderCancelled("render cancelled")


class NonFiniteError(ValueError):
    """A render's loss or score stopped being a finite number (INVALID_ARGUMENT: weights far out of
    scale make it so). The render fails rather than return a black or grey picture as OK."""


def check_finite(value: float, what: str, step: int) -> None:
    if not math.isfinite(value):
        raise NonFiniteError(f"the {what} became {value} at step {step}: the weights are out of scale for "
                             "float32 (lower style_weight, content_weight, the layers' or terms' weights)")


class WorkClock:
    """Elapsed time and ETA over units of work of unequal cost (pixels x steps).

    The ETA comes from measured steps only: the rate is taken from the end of the first step on,
    so set-up before it (style targets, a model's first run) does not inflate the estimate (a
    style render's first ETA once said 2217 s for a 201 s run). It is 0, unknown, until a second
    step has been timed.
    """

    def __init__(self, total_work: float) -> None:
        self.start = time.perf_counter()
        self.total = max(total_work, 1e-9)
        self.done = 0.0
        self._mark: tuple[float, float] | None = None  # (time, work done) at the first step's end

    def add(self, work: float) -> None:
        self.done += work
        if self._mark is None:
            self._mark = (time.perf_counter(), self.done)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def eta(self) -> float:
        if self._mark is None or self.done <= self._mark[1]:
            return 0.0
        t0, d0 = self._mark
        return max(0.0, (time.perf_counter() - t0) / (self.done - d0) * (self.total - self.done))


def resolve_device(name: str = "auto") -> torch.device:
    """"auto": CUDA when present, else CPU. Anything else is passed to torch.device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _cpu_flags() -> dict:
    """What torch's CPU dispatcher detected (`avx512_bf16`, `amx_bf16`, ...); empty if it cannot say."""
    try:
        return dict(torch._C._cpu._get_cpu_capability())
    except (AttributeError, RuntimeError):  # older or newer torch without the private probe
        return {}


def native_bf16(device: torch.device) -> bool:
    """Whether `device` runs bf16 matmuls and convolutions in hardware.

    CUDA: what torch reports (Ampere and later). CPU: AVX-512 BF16 or AMX-BF16 as torch's own CPU
    probe sees them. Without them, oneDNN emulates bf16 with fp32 arithmetic plus conversions,
    which is slower than plain fp32, so `auto` must not pick it there.
    """
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        flags = _cpu_flags()
        return bool(flags.get("avx512_bf16") or flags.get("amx_bf16")) and not _isa_capped_below_avx512()
    return False


def _isa_capped_below_avx512() -> bool:
    """Whether torch's kernels (ATEN_CPU_CAPABILITY) or oneDNN's (ONEDNN_MAX_CPU_ISA) are held under
    AVX-512: the CPU has bf16 then, but the kernels cannot use it (and an AVX2 machine is measured
    on an AVX-512 one this way: README, Quick start)."""
    import os

    aten = torch.backends.cpu.get_cpu_capability().upper()
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "ALL")).upper()
    return not aten.startswith("AVX512") or not (onednn == "ALL" or "AVX512" in onednn or "AMX" in onednn)


def resolve_precision(precision: str, device: torch.device) -> str:
    """"fp32" or "bf16": what a render with setting `precision` ("fp32", "bf16", "auto") runs in."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "bf16" and not native_bf16(device):
        log.warning("precision bf16 on %s without native bf16: emulated, expect it slower than fp32", device)
    return precision


def autocast_for(device: torch.device, precision: str = "fp32") -> contextlib.AbstractContextManager:
    """The autocast context the feature network runs in: bf16 when `precision` is "bf16", else none.

    Only the network's forward (and so its backward) is under it; every caller converts the
    layer outputs back to fp32 before losses, Grams or gradient norms touch them (see
    `engine/style.py` and `engine/dream.py`). fp32 is the reference and runs with no autocast on
    any device (earlier versions ran CUDA under fp16 autocast unasked). bf16 keeps fp32's 8-bit
    exponent, so Caffe-scale activations (0-255 inputs) keep their range; only mantissa bits go.
    """
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
