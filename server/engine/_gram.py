"""Gram matrices and their losses, with hand-written backwards (the style engine's inner loop)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["gram", "gram_loss", "GuidedPart", "guided_loss", "guided_part", "full_precision"]


def gram(feat: torch.Tensor) -> torch.Tensor:
    """Gram matrix divided by C*H*W (the normalisation of the anchor and of neural-style)."""
    _, c, h, w = feat.shape
    return _raw_gram(feat) / (c * h * w)


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """Grams in at least float32: under bf16 autocast the features are bfloat16."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _rows(feat: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Features as a 2-D matrix without a copy: (C, HW) for NCHW, (HW, C) for channels_last."""
    _, c, h, w = feat.shape
    if _nhwc(feat):
        return full_precision(feat.permute(0, 2, 3, 1).reshape(h * w, c)), True
    return full_precision(feat.reshape(c, h * w)), False


def _nhwc(feat: torch.Tensor) -> bool:
    return not feat.is_contiguous() and feat.is_contiguous(memory_format=torch.channels_last)


def _onednn(feat: torch.Tensor) -> bool:
    """Whether the Gram's two products go through oneDNN's 1x1-convolution kernels.

    On the CPU, MKL's sgemm (what `@` calls) reaches about half the conv kernels' speed on these
    tall-skinny shapes (on AMD it takes its AVX2 path); oneDNN's weight gradient of a 1x1 conv is
    the same sum F F^T, and its forward is the backward's (G - A) F. Measured on 2 cores, the five
    style layers of VGG16 at 512 px, Gram forward + backward: 80 ms through `@`, 41 ms through
    oneDNN, float32 both, equal to rounding (tests/test_style_engine.py checks it).
    """
    return feat.device.type == "cpu" and feat.dtype == torch.float32 and _nhwc(feat)


def _raw_gram(feat: torch.Tensor) -> torch.Tensor:
    """F F^T of one (1, C, H, W) feature map, not normalised."""
    c = feat.shape[1]
    if _onednn(feat):
        return torch.nn.grad.conv2d_weight(feat, (c, c, 1, 1), feat).view(c, c)
    f, nhwc = _rows(feat)
    return (f.t() @ f) if nhwc else (f @ f.t())


class _GramLoss(torch.autograd.Function):
    """sum((gram(F) - A)^2) with a hand-written backward: dF = 4/n (G - A) F.

    Autograd through `F @ F.t()` does two matmuls backward (one per operand, though both are
    F); the closed form needs one, which cuts the style loss's matmul work by a third.
    """

    @staticmethod
    def forward(ctx, feat: torch.Tensor, target: torch.Tensor,  # type: ignore[override]
                n: torch.Tensor | float | None) -> torch.Tensor:
        _, c, h, w = feat.shape
        n = c * h * w if n is None else n  # a guided Gram's normaliser is C times its mask's mass
        diff = _raw_gram(feat) / n - target
        ctx.save_for_backward(feat, diff)
        ctx.n = n
        return diff.pow(2).sum()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        feat, diff = ctx.saved_tensors
        return _gram_backward(feat, diff, grad_out * 4.0 / ctx.n), None, None


def _gram_backward(feat: torch.Tensor, diff: torch.Tensor, k: torch.Tensor | float) -> torch.Tensor:
    """k (G - A) F: the gradient of |gram - A|^2 with respect to F, 4/n folded into k."""
    n, c, h, w = feat.shape
    if _onednn(feat):
        # (G - A) is symmetric up to rounding; symmetrise so the 1x1 conv is the exact gradient.
        # The factor k rides on the small C x C weight instead of a pass over the large output.
        sym = (diff + diff.t()).mul_(0.5 * k)
        return F.conv2d(feat, sym.view(c, c, 1, 1))
    f, nhwc = _rows(feat)
    if nhwc:  # (HW, C) @ (C, C), back to NCHW shape with channels_last strides
        return (f @ diff).mul_(k).reshape(n, h, w, c).permute(0, 3, 1, 2)
    return (diff @ f).mul_(k).reshape(feat.shape)


def gram_loss(feat: torch.Tensor, target: torch.Tensor, n: torch.Tensor | float | None = None) -> torch.Tensor:
    """Sum of squared differences between gram(feat) and `target`; `n` replaces gram()'s C*H*W
    normaliser (a guided Gram's: C times its mask's mass)."""
    return _GramLoss.apply(feat, target, n)


@dataclass(frozen=True)
class GuidedPart:
    """One region's share of a layer's style loss: its weight; the positions of the layer's map
    where its mask has weight (flat indices into H*W; None: the whole map, unguided) and the mask's
    weights there, (N, 1); the Gram's normaliser; the target."""

    weight: float
    index: torch.Tensor | None
    mask: torch.Tensor | None
    n: torch.Tensor | float
    target: torch.Tensor


class _GuidedLoss(torch.autograd.Function):
    """sum_r w_r |(F_r m_r)^T (F_r m_r) / n_r - A_r|^2 over one layer's regions, F_r the rows of
    the features where region r has weight.

    A region's Gram is taken over its own positions only, gathered into an (N, C) block: a soft
    cat-and-background pair costs about one whole Gram plus the blurred border, not two. One
    function for all of a layer's regions, so the backward adds every region's m-weighted gradient
    into one map in place (autograd through gather, multiply and sum made a full-size map, a copy
    and an add per region: two regions cost 1.22x an unmasked iteration at 512 px). The weighted
    rows are gathered again in the backward rather than kept (a feature map's memory per layer)."""

    @staticmethod
    def forward(ctx, feat: torch.Tensor, parts: Sequence[GuidedPart]) -> torch.Tensor:  # type: ignore[override]
        total, diffs = feat.new_zeros((), dtype=torch.float32), []
        for p in parts:
            diff = _raw_gram(_weighted(feat, p)) / p.n - p.target
            diffs.append(diff)
            total = total + p.weight * diff.pow(2).sum()
        ctx.save_for_backward(feat)
        ctx.parts, ctx.diffs = parts, diffs
        return total

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (feat,) = ctx.saved_tensors
        n, c, h, w = feat.shape
        grad = feat.new_zeros(h * w, c)  # rows, as channels_last holds them
        for p, diff in zip(ctx.parts, ctx.diffs):
            g = _as_rows(_gram_backward(_weighted(feat, p), diff, grad_out * 4.0 * p.weight / p.n))
            if p.index is None:
                grad.add_(g)
            else:
                grad.index_add_(0, p.index, g.mul_(p.mask))
        return grad.view(n, h, w, c).permute(0, 3, 1, 2), None


def _as_rows(x: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) as (H*W, C): a view for channels_last, a copy otherwise."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _weighted(feat: torch.Tensor, p: GuidedPart) -> torch.Tensor:
    """The region's weighted rows as a (1, C, N, 1) channels_last map (the Gram kernels' layout)."""
    if p.index is None:
        return feat
    rows = _as_rows(feat).index_select(0, p.index).mul_(p.mask)
    return rows.view(1, rows.shape[0], 1, rows.shape[1]).permute(0, 3, 1, 2)


def guided_loss(feat: torch.Tensor, parts: Sequence[GuidedPart]) -> torch.Tensor:
    """A layer's style loss over its regions (see _GuidedLoss)."""
    return _GuidedLoss.apply(feat, tuple(parts))


def guided_part(weight: float, mask_l: torch.Tensor | None, n: torch.Tensor | float,
                target: torch.Tensor) -> GuidedPart:
    """A region's part from its mask at the layer's size ((1, 1, h, w); None: unguided)."""
    if mask_l is None:
        return GuidedPart(weight, None, None, n, target)
    flat = mask_l.reshape(-1)
    index = (flat > 0).nonzero()[:, 0]
    return GuidedPart(weight, index, flat[index].unsqueeze(1).float(), n, target)
