"""DeepDream's objective and step helpers beyond the plain score: guided dreams, the strongest
channels of a layer, Laplacian-pyramid gradient normalisation, and the zoom animation's warp.

Our own implementations of the ideas in google/deepdream (objective_guide, the zoom loop), the
TensorFlow DeepDream tutorial (lap_normalize) and ProGamerGov/neural-dream (-channel_mode strong).
"""
from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F

from dreamrender.errors import InvalidArgumentError
from dreamrender.models import FeatureNet
from dreamrender.settings import DreamTerm

from .runtime import autocast_for

__all__ = ["lap_normalize", "max_lap_levels", "guide_features", "guided_score", "strongest_channels",
           "zoom_warp", "GUIDE_POSITIONS"]

# The tutorial's 5x5 binomial kernel, separable ([1, 4, 6, 4, 1] / 16 each way).
_K1 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
_K5 = torch.outer(_K1, _K1)


def _kernel(x: torch.Tensor) -> torch.Tensor:
    return _K5.to(x.device, x.dtype).expand(x.shape[1], 1, 5, 5)


def _down(x: torch.Tensor) -> torch.Tensor:
    # Reflected edges, where the tutorial pads with zeros: zeros make every image border a step
    # that lands in the finest band and, once that band is normalised, grows edge artefacts.
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), _kernel(x), stride=2, groups=x.shape[1])


def _up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    # Bilinear, where the tutorial transposes the blur: the split stays exact either way (each band
    # is what the upsampled coarser level misses), and bilinear needs no care at odd sides or edges.
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def max_lap_levels(side: int) -> int:
    """The most pyramid levels an image whose shorter side is `side` can be split into (each
    level halves it; the coarsest band keeps at least 2 px)."""
    return max(0, int(math.log2(max(side, 1))) - 1)


def lap_normalize(grad: torch.Tensor, levels: int) -> torch.Tensor:
    """The gradient split into `levels` high-frequency bands plus the low residual, each band
    divided by its RMS, then recombined (the TensorFlow DeepDream tutorial's lap_normalize).

    Departure: the sum is rescaled to unit std, so that a step's size means what it means with
    std normalisation and only the balance of frequencies changes. Applied to the whole image's
    gradient after its tiles are put together, so it adds no tile seams.
    """
    if levels < 1 or levels > max_lap_levels(min(grad.shape[-2:])):
        raise InvalidArgumentError("lap_levels", f"{levels} levels do not fit a {grad.shape[-1]}x{grad.shape[-2]} "
                                   "image", f"1 to {max_lap_levels(min(grad.shape[-2:]))}")
    bands, low, sizes = [], grad, []
    for _ in range(levels):
        sizes.append(tuple(low.shape[-2:]))
        smaller = _down(low)
        bands.append(low - _up(smaller, sizes[-1]))
        low = smaller
    out = low / (low.pow(2).mean().sqrt() + 1e-8)
    for band, size in zip(reversed(bands), reversed(sizes)):
        out = _up(out, size) + band / (band.pow(2).mean().sqrt() + 1e-8)
    return out / (out.std() + 1e-8)


# A guide's features are matched against at most this many of its positions (a seeded sample):
# the match matrix is positions x this, so shallow layers of a large guide stay bounded.
GUIDE_POSITIONS = 4096
_MATCH_ROWS = 8192  # positions of a tile matched at a time


@torch.no_grad()
def guide_features(net: FeatureNet, guide: torch.Tensor, terms: tuple[DreamTerm, ...], *, device: torch.device,
                   precision: str, seed: int) -> dict[str, torch.Tensor]:
    """Per term layer, the guide image's features as (C, M) float32 columns, computed once."""
    layers = sorted({t.layer for t in terms})
    with autocast_for(device, precision):
        acts = net(guide.to(device), layers)
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in layers:
        cols = acts[name][0].float().flatten(1)  # (C, H*W)
        if cols.shape[1] > GUIDE_POSITIONS:
            cols = cols[:, torch.randperm(cols.shape[1], generator=g)[:GUIDE_POSITIONS].to(cols.device)]
        out[name] = cols.contiguous()
    return out


def guided_score(acts: Mapping[str, torch.Tensor], terms: tuple[DreamTerm, ...],
                 guides: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """google/deepdream's guide objective: each position's features x are scored by x . y, where
    y is the guide feature (same layer) that matches x best by dot product. Its gradient with
    respect to x is y: every position is pushed toward its best-matching guide feature."""
    total = torch.zeros((), device=next(iter(acts.values())).device)
    for term in terms:
        x = acts[term.layer][0].float().flatten(1)  # (C, N)
        guide = guides[term.layer]
        if term.channels:
            idx = list(term.channels)
            x, guide = x[idx], guide[idx]
        with torch.no_grad():  # which guide column each position matches: no gradient through the choice
            target = torch.empty_like(x)
            for a in range(0, x.shape[1], _MATCH_ROWS):
                best = (x[:, a:a + _MATCH_ROWS].t() @ guide).argmax(1)
                target[:, a:a + _MATCH_ROWS] = guide[:, best]
        total = total + term.weight * (x * target).sum() / x.numel()
    return total


@torch.no_grad()
def strongest_channels(net: FeatureNet, img: torch.Tensor, terms: tuple[DreamTerm, ...], *, objective: str,
                       device: torch.device, precision: str) -> tuple[DreamTerm, ...]:
    """The terms with `strongest` K resolved to the K channels of their layer that respond most
    to `img` (by the objective's own measure: mean, or mean square), in ascending order."""
    asking = [t for t in terms if t.strongest]
    if not asking:
        return terms
    with autocast_for(device, precision):
        acts = net(img.to(device), sorted({t.layer for t in asking}))
    out = []
    for t in terms:
        if t.strongest:
            a = acts[t.layer][0].float()
            strength = (a.pow(2) if objective == "mean_squared" else a).mean(dim=(1, 2))
            top = torch.topk(strength, t.strongest).indices.sort().values
            t = DreamTerm(t.layer, tuple(int(c) for c in top), t.weight, t.strongest)
        out.append(t)
    return tuple(out)


def zoom_warp(img: torch.Tensor, *, zoom: float, rotate: float, shift_x: int, shift_y: int) -> torch.Tensor:
    """The next animation frame's start: `img` zoomed about its centre by `zoom`, turned by
    `rotate` degrees and moved by (shift_x, shift_y) pixels (bilinear; edges that a zoom-out
    or a turn uncovers are filled by reflection, as google/deepdream's nd.affine_transform does)."""
    h, w = img.shape[-2:]
    c, s = math.cos(math.radians(rotate)), math.sin(math.radians(rotate))
    # Output -> input in normalised coordinates, with the turn done in pixel units (an image that is
    # not square would otherwise shear): theta = diag(2/w, 2/h) R/zoom diag(w/2, h/2).
    theta = torch.tensor([[c / zoom, -s / zoom * h / w, -2.0 * shift_x / w],
                          [s / zoom * w / h, c / zoom, -2.0 * shift_y / h]], dtype=img.dtype, device=img.device)
    grid = F.affine_grid(theta[None], list(img.shape), align_corners=False)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="reflection", align_corners=False).clamp_(0, 1)
