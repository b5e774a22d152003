"""Spatial control of style (Gatys, Ecker, Bethge, Hertzmann & Shechtman, "Controlling Perceptual
Factors in Neural Style Transfer", CVPR 2017, section 4): guided Gram matrices, one set per region.

A region is a style with a mask over the content. At every style layer the mask is brought to the
layer's feature map, the features are weighted by it, and the Gram of the weighted features is
normalised by the mask's mass there, so a region's Gram describes the texture inside it alone,
whatever its area. Each region's Grams are matched to its own style's (themselves guided by the
style image's own mask, the paper's "source region", when there is one). Where no mask reaches,
no style term acts and the content loss holds the photo.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from ._gram import full_precision

__all__ = ["Region", "layer_mask", "guided_gram", "mask_mass", "blend_regions"]


@dataclass(frozen=True)
class Region:
    """One style's share of a scale: its weight, its mask at the scale's image size ((1, 1, H, W) in
    [0, 1]; None: everywhere) and its Gram targets per style layer."""

    weight: float
    mask: torch.Tensor | None
    grams: Mapping[str, torch.Tensor]


def layer_mask(mask: torch.Tensor, hw: Sequence[int]) -> torch.Tensor:
    """`mask` brought to a feature map of size `hw` by area averaging.

    The paper offers two rules: resample the guidance channels with the image, or keep only the
    neurons whose receptive fields lie inside a region (an erosion). We average each feature cell's
    own block of pixels (for VGG's floor-divided 2x2 pools, the cell's stride x stride block): a
    cell on a border weighs its share of the region, so the border stays soft at every depth and
    the mass follows the area. Erosion would leave a band along every border unstyled at the deep
    layers (conv5's receptive field is about 200 px), which reads as a halo of photo there. The
    result depends only on the whole mask and the map's size, so tiles slice the same values
    (the tiled loss stays exact)."""
    if tuple(mask.shape[-2:]) == tuple(hw):
        return mask
    return F.adaptive_avg_pool2d(mask, tuple(hw))


def mask_mass(mask_l: torch.Tensor) -> torch.Tensor:
    """The normaliser of a guided Gram at one layer: the sum of the squared weights (a mask of ones
    gives H*W, the unguided Gram's), kept from zero for a region that vanishes at a deep layer."""
    return mask_l.pow(2).sum().clamp_min(1e-6)


def guided_gram(feat: torch.Tensor, mask_l: torch.Tensor) -> torch.Tensor:
    """(F m)(F m)^T / (C sum m^2) of a (1, C, h, w) feature map and its layer's mask (1, 1, h, w)."""
    f = full_precision((feat * mask_l).flatten(2)[0])
    return (f @ f.t()) / (feat.shape[1] * mask_mass(mask_l))


def blend_regions(background: torch.Tensor, paintings: Sequence[torch.Tensor],
                  masks: Sequence[torch.Tensor | None], weights: Sequence[float]) -> torch.Tensor:
    """Feed-forward regions: each painting over its mask, the background (the photo) where none
    reaches. Where soft masks overlap the paintings mix by mask times weight; how much of the photo
    shows depends on the masks alone. All (1, C, H, W) at one size; a None mask covers everything."""
    ones = torch.ones_like(background[:, :1])
    covers = [ones if m is None else m.to(background.dtype) for m in masks]
    mixed = _mix(paintings, [m * w for m, w in zip(covers, weights)])
    # Where only zero-weight regions reach, they mix by mask alone (not to black); where no mask
    # reaches, the photo (0/0 marks both).
    mixed = torch.where(mixed.isnan(), _mix(paintings, covers), mixed)
    mixed = torch.where(mixed.isnan(), background, mixed)
    cover = sum(covers).clamp(max=1.0)  # type: ignore[union-attr]
    return (background + cover * (mixed - background)).clamp(0, 1)


def _mix(paintings: Sequence[torch.Tensor], weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """The weighted mean of the paintings per pixel (NaN where the weights sum to 0)."""
    total = sum(weights)
    return sum(w * p for w, p in zip(weights, paintings)) / total  # type: ignore[operator]
