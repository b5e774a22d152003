"""L-BFGS with its correction pairs stored compactly.

The same iteration as torch.optim.LBFGS without a line search (neural-style's setting: a fixed
step of `lr`), so a run with float32 storage and torch's first step (`first_step="l1"`) follows
torch's to float rounding (tests/engine/test_lbfgs.py). The engine's first step is longer (see
_first_step: torch's makes the first curvature pair rounding noise). The history differs too: each pair
of image-sized vectors (s, y) is kept in `storage` (float16 by default) scaled by its largest
magnitude, which halves the memory that grows with the pixels (50 pairs are 200 MiB in float32
at 512x341). The two-loop recursion reads them back into float32 arithmetic, and the curvature
scalars (y.s, y.y) come from the float32 vectors before they are stored.
bench/bench_lbfgs_history.py compares the loss curves of float16 and float32 pairs.
"""
from __future__ import annotations

from collections import deque
from typing import Callable

import torch

__all__ = ["minimize"]

# torch.optim.LBFGS skips a pair whose curvature y.s is not above this (its constant).
_MIN_CURVATURE = 1e-10


class _Pair:
    """One correction pair (s: the step, y: the change in gradient), each stored as
    (values / scale) in the storage dtype, with 1 / (y.s)."""

    __slots__ = ("s", "s_scale", "y", "y_scale", "rho")

    def __init__(self, s: torch.Tensor, y: torch.Tensor, ys: float, storage: torch.dtype) -> None:
        self.s, self.s_scale = _pack(s, storage)
        self.y, self.y_scale = _pack(y, storage)
        self.rho = 1.0 / ys


def _pack(v: torch.Tensor, storage: torch.dtype) -> tuple[torch.Tensor, float]:
    if storage == v.dtype:
        return v, 1.0
    # Scaled into [-1, 1] first: float16's range ends at 65504, and gradient differences of a
    # style loss in 0-255 pixel units can be far larger (or far smaller) than that.
    scale = float(v.abs().max()) or 1.0
    return (v / scale).to(storage), scale


def _dot(stored: torch.Tensor, scale: float, v: torch.Tensor) -> float:
    return scale * float(torch.dot(stored if stored.dtype == v.dtype else stored.to(v.dtype), v))


def _direction(g: torch.Tensor, pairs: deque[_Pair], h_diag: float) -> torch.Tensor:
    """The two-loop recursion: -H g for the inverse Hessian approximation the pairs define."""
    q = g.neg()
    alphas = []
    for p in reversed(pairs):
        a = p.rho * _dot(p.s, p.s_scale, q)
        alphas.append(a)
        q.add_(p.y, alpha=-a * p.y_scale)  # a mixed-dtype add: no float32 copy of the pair
    q.mul_(h_diag)
    for p, a in zip(pairs, reversed(alphas)):
        b = p.rho * _dot(p.y, p.y_scale, q)
        q.add_(p.s, alpha=(a - b) * p.s_scale)
    return q


def _first_step(g: torch.Tensor, lr: float, rule: str) -> float:
    """The first step's length along -g. "l1" is torch's (and neural-style's): L1 norm `lr` over
    the whole step. "max" moves the most-moved element by `lr` instead.

    Why we depart from torch: on a 512 px image torch's first step moves each pixel by about 1e-6
    of a grey level, so the first curvature pair's y = g1 - g0 is mostly the rounding of two
    nearly equal gradients, and the scale L-BFGS takes from it (y.s / y.y) is luck. Measured beside
    neural-style-pt (bench/bench_neural_style_pt.py, VGG19, 512 px): with channels_last
    convolutions, whose rounding differs from NCHW's, that scale overshot (loss 2.6e8 against the
    peer's 9.1e7 at the third evaluation) and the run stayed behind for ~30 iterations (1.45x the
    peer's loss at 10); run in NCHW it followed the peer to 0.1%. A step of `lr` in the largest
    element makes y a real change of gradient, whatever the kernels' rounding.
    """
    size = float(g.abs().sum()) if rule == "l1" else float(g.abs().max())
    if not size:
        return lr  # a zero gradient: the step is zero anyway
    return (min(1.0, 1.0 / size) if rule == "l1" else 1.0 / size) * lr


def minimize(x: torch.Tensor, closure: Callable[[], torch.Tensor], *, iterations: int, lr: float,
             history: int, storage: torch.dtype = torch.float16, first_step: str = "max") -> None:
    """Run `iterations` L-BFGS iterations on the leaf tensor `x` (moved in place).

    `closure()` evaluates the loss at `x` and accumulates its gradient into `x.grad` (which is
    cleared before each call); it is called `iterations` times and `x` ends at the last point
    evaluated, as with torch's LBFGS with max_iter = max_eval = iterations (which then stops on
    its evaluation count). `history` pairs are kept, in `storage`. `first_step`: "max" (ours,
    see _first_step) or "l1" (torch's, with which float32 storage follows torch's LBFGS).
    """
    pairs: deque[_Pair] = deque(maxlen=history)
    flat = x.detach().view(-1)

    def evaluate() -> torch.Tensor:
        x.grad = None  # each gradient its own tensor: the previous one is kept for y
        closure()
        assert x.grad is not None, "the closure must backpropagate into x"
        return x.grad.detach().reshape(-1)

    g = evaluate()
    d, h_diag = g.neg(), 1.0
    t = _first_step(g, lr, first_step)
    for n in range(1, iterations + 1):
        if n > 1:
            y, s = g - prev, d.mul(t)
            ys = float(y.dot(s))
            if ys > _MIN_CURVATURE:
                pairs.append(_Pair(s, y, ys, storage))
                h_diag = ys / float(y.dot(y))
            del y, s
            d, t = _direction(g, pairs, h_diag), lr
        # torch's stop for a direction that does not descend (gtd > -tolerance_change, with the
        # tolerance_change of -1 the engine always passed it); kept so the runs stay identical.
        if float(g.dot(d)) > 1.0:
            return
        with torch.no_grad():
            flat.add_(d, alpha=t)
        if n == iterations:  # iterations == 1: torch's one step, not evaluated
            return
        prev, g = g, evaluate()
        if n + 1 == iterations:  # the evaluations are used up: x stays where it was last evaluated
            return
