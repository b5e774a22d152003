"""Exact tiled style loss: memory bounded by a tile, whatever the image size.

The style loss needs Gram matrices over the whole feature map, but the network's activations need
not all live at once. Per evaluation:

- pass 1 runs each tile (with a halo wide enough for the receptive field of the deepest layer,
  trimmed again at every layer) without autograd, and sums each tile's F^T F into the global
  Grams and each tile's squared content difference into the content loss;
- pass 2 runs each tile with autograd and backpropagates the surrogate <F_t, stopgrad(dL/dF_t)>,
  where dL/dF_t follows from the global Grams in closed form: 4/n (G - A) F_t for the squared
  Gram difference (the engine's _GramLoss backward), 2/n (F_t - C_t) for the content term.

Sum over tiles of the trimmed interiors covers every feature position once, so the loss and the
gradient are the untiled ones up to float rounding (tests/engine/test_tiles.py checks 1e-4). It
costs one extra forward pass and the halos' overlap. This is exact only for a chain of stride-1
"same" convolutions, ReLUs and 2x2/2 pools (the VGG family): tile origins are multiples of the
deepest layer's stride, so every pooling window falls where it does in the whole image, and
`geometry` returns None for any other network.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import torch
from torch import nn

from dreamrender.models import FeatureNet
from dreamrender.settings import StyleSettings

from ._regions import Region, layer_mask, mask_mass
from .runtime import autocast_for

__all__ = ["Geometry", "geometry", "tile_spans", "Tile", "tiles", "tiled_grams_and_maps", "TiledObjective",
           "total_variation"]


@dataclass(frozen=True)
class Geometry:
    """How a network's layers sit on the input: per-layer stride, tile alignment and halo (px)."""

    strides: Mapping[str, int]
    align: int
    halo: int

    def cells(self, layer: str, hw: Sequence[int]) -> int:
        """Positions in `layer`'s whole feature map for an image of size `hw` (floor-divided, as
        2x2/2 pools without ceil mode give)."""
        s = self.strides[layer]
        return (hw[0] // s) * (hw[1] // s)


def geometry(net: FeatureNet, layers: Sequence[str]) -> Geometry | None:
    """The tiling geometry of `layers` in `net`, or None when tiles could not be exact there."""
    seq = getattr(net.net, "features", None)
    if not isinstance(seq, nn.Sequential):
        return None
    wanted: dict[int, list[str]] = {}
    for name in layers:
        path = net.layers[name].module.split(".")
        if len(path) != 2 or path[0] != "features":
            return None
        wanted.setdefault(int(path[1]), []).append(name)
    # How far, in input px, a feature reaches left of its position (index x stride) and right of it.
    left = right = 0
    stride, strides, reach = 1, {}, 0
    for index, module in enumerate(seq):
        if index > max(wanted):
            break
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0]
            if (module.kernel_size != (k, k) or module.stride != (1, 1) or module.dilation != (1, 1)
                    or module.padding != ((k - 1) // 2,) * 2 or k % 2 == 0):
                return None
            left, right = left + stride * (k - 1) // 2, right + stride * (k - 1) // 2
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
            if (_pair(module.kernel_size), _pair(module.stride), _pair(module.padding)) != ((2, 2), (2, 2), (0, 0)) \
                    or module.ceil_mode:
                return None
            right += stride  # a 2x2/2 window reaches one more cell to the right, none to the left
            stride *= 2
        elif not isinstance(module, nn.ReLU):
            return None
        for name in wanted.get(index, ()):
            strides[name] = stride
            # A tile's last interior feature sits one stride before the interior's end.
            reach = max(reach, left, right - stride + 1)
    align = max(strides.values())
    return Geometry(strides, align, math.ceil(reach / align) * align)


def _pair(v: int | tuple[int, ...]) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, tuple) else (v, v)


def tile_spans(n: int, tile: int, align: int) -> list[tuple[int, int]]:
    """Interior spans [a, b) covering 0..n, of about `tile` px, starts aligned; equal sizes so
    that no sliver of a last tile costs a whole halo."""
    count = max(1, math.ceil(n / max(tile, align)))
    step = math.ceil(n / count / align) * align
    return [(a, min(a + step, n)) for a in range(0, n, step)]


@dataclass(frozen=True)
class Tile:
    """One tile: its crop of the image (with halo) and, per layer, the interior's slices in the
    crop's feature map and in the whole image's."""

    crop: tuple[slice, slice]
    local: Mapping[str, tuple[slice, slice]]
    whole: Mapping[str, tuple[slice, slice]]

    def of(self, whole_map: torch.Tensor, layer: str) -> torch.Tensor:
        """The tile's part of a whole-image feature map of `layer` (e.g. a content target)."""
        ys, xs = self.whole[layer]
        return whole_map[:, :, ys, xs]


def tiles(hw: Sequence[int], tile: int, geo: Geometry) -> list[Tile]:
    """The tiles of an image of size `hw`."""
    out = []
    h, w = hw
    for ya, yb in tile_spans(h, tile, geo.align):
        for xa, xb in tile_spans(w, tile, geo.align):
            cy, cx = max(0, ya - geo.halo), max(0, xa - geo.halo)
            crop = (slice(cy, min(h, yb + geo.halo)), slice(cx, min(w, xb + geo.halo)))
            local, whole = {}, {}
            for name, s in geo.strides.items():
                # Ends at the image's edge take the whole map's floor-divided size.
                y1, x1 = (yb // s if yb < h else h // s), (xb // s if xb < w else w // s)
                whole[name] = (slice(ya // s, y1), slice(xa // s, x1))
                local[name] = (slice(ya // s - cy // s, y1 - cy // s), slice(xa // s - cx // s, x1 - cx // s))
            out.append(Tile(crop, local, whole))
    return out


def interior(feat: torch.Tensor, t: Tile, layer: str) -> torch.Tensor:
    """The tile's own part of a layer's output, in float32 (the precision boundary, as untiled)."""
    ys, xs = t.local[layer]
    part = feat[:, :, ys, xs]
    return part.float() if part.dtype != torch.float32 else part


def rows(part: torch.Tensor) -> torch.Tensor:
    """(1, C, h, w) -> (h*w, C)."""
    return part.permute(0, 2, 3, 1).reshape(-1, part.shape[1])


def _add(sums: dict[str, torch.Tensor], key: str, value: torch.Tensor) -> None:
    """sums[key] += value, starting from value (the tiles' running sums)."""
    sums[key] = sums[key] + value if key in sums else value


def _gram_sum(part: torch.Tensor) -> torch.Tensor:
    """F^T F of a tile's interior, not normalised (the tiles' sum is the whole image's)."""
    f = rows(part)
    return f.t() @ f


def tiled_grams_and_maps(net: FeatureNet, image: torch.Tensor, *, gram_layers: Sequence[str],
                         map_layers: Sequence[str], tile: int, geo: Geometry, device: torch.device,
                         precision: str, mask: torch.Tensor | None = None
                         ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Without autograd: the normalised Grams of `gram_layers` (guided by `mask`, (1, 1, H, W), when
    given) and the whole feature maps of `map_layers` of `image`, one tile at a time (the targets
    of a large scale)."""
    h, w = image.shape[-2:]
    layers = list(dict.fromkeys([*gram_layers, *map_layers]))
    raw: dict[str, torch.Tensor] = {}
    maps: dict[str, torch.Tensor] = {}
    guides = {} if mask is None else {name: _whole_mask(mask.to(device), geo, name, (h, w)) for name in gram_layers}
    with torch.no_grad():
        for t, feats in run(net, image, layers, tile, geo, device, precision):
            for name in gram_layers:
                part = interior(feats[name], t, name)
                _add(raw, name, _gram_sum(part if mask is None else part * t.of(guides[name], name)))
            for name in map_layers:
                part = interior(feats[name], t, name)
                if name not in maps:
                    s = geo.strides[name]
                    maps[name] = torch.empty(1, part.shape[1], h // s, w // s, device=device)
                t.of(maps[name], name)[...] = part
    # gram(): / (C H W); a guided Gram: / (C sum m^2)
    grams = {name: g / (g.shape[0] * (geo.cells(name, (h, w)) if mask is None else mask_mass(guides[name])))
             for name, g in raw.items()}
    return grams, maps


def _whole_mask(mask: torch.Tensor, geo: Geometry, layer: str, hw: Sequence[int]) -> torch.Tensor:
    """A mask at `layer`'s whole feature map (floor-divided sizes, as the tiles slice it)."""
    s = geo.strides[layer]
    return layer_mask(mask, (hw[0] // s, hw[1] // s))


@dataclass(frozen=True)
class _StyleTerm:
    """One Gram term of the tiled loss: a layer against one target, guided by a whole-map mask or not."""

    layer: str
    weight: float
    mask: torch.Tensor | None
    n: torch.Tensor | float  # the Gram's normaliser: C H W, or C sum m^2
    target: torch.Tensor


def run(net: FeatureNet, image: torch.Tensor, layers: Sequence[str], tile: int, geo: Geometry,
        device: torch.device, precision: str) -> Iterator[tuple[Tile, dict[str, torch.Tensor]]]:
    """Each tile and the network's outputs on its crop (autograd as the caller has it)."""
    for t in tiles(image.shape[-2:], tile, geo):
        crop = image[:, :, t.crop[0], t.crop[1]].to(device)
        with autocast_for(device, precision):
            feats = net(crop, layers)
        yield t, feats


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean squared neighbour difference in 0-255 units (like the other terms' Caffe-scale features)."""
    dy = (x[:, :, 1:, :] - x[:, :, :-1, :]).mul(255).pow(2).mean()
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).mul(255).pow(2).mean()
    return dx + dy


def _reaches(term: _StyleTerm, t: Tile) -> bool:
    """Whether a Gram term has any weight in a tile (a region's Gram skips the tiles outside it)."""
    return term.mask is None or bool(t.of(term.mask, term.layer).any())


class TiledObjective:
    """The style objective of one scale, evaluated tile by tile (see the module docstring).

    `content` holds the whole content feature maps and `grams` the style targets (as untiled);
    with `regions` (masks), each region's guided Grams are the targets instead: a tile adds its
    share of every region's Gram in pass 1, and its part of every region's gradient in pass 2.
    """

    def __init__(self, net: FeatureNet, s: StyleSettings, content: Mapping[str, torch.Tensor],
                 grams: Mapping[str, torch.Tensor], device: torch.device, precision: str, *,
                 geo: Geometry, tile: int, regions: Sequence[Region] = ()) -> None:
        self.net, self.s, self.content, self.grams, self.regions = net, s, content, grams, tuple(regions)
        self.device, self.precision, self.geo, self.tile = device, precision, geo, tile
        self.layers = s.layer_names
        self._terms: tuple[tuple[int, int], list[_StyleTerm]] | None = None

    def _style_terms(self, hw: tuple[int, int], counts: Mapping[str, int]) -> list[_StyleTerm]:
        """The Gram terms at an image size: one per style layer, or one per layer and region."""
        if self._terms is None or self._terms[0] != hw:
            terms = []
            for l in self.s.style_layers:
                if not self.regions:
                    terms.append(_StyleTerm(l.layer, l.weight, None, counts[l.layer], self.grams[l.layer]))
                for r in self.regions:
                    m = None if r.mask is None else _whole_mask(r.mask.to(self.device), self.geo, l.layer, hw)
                    n = counts[l.layer] if m is None else self.net.layers[l.layer].channels * mask_mass(m)
                    terms.append(_StyleTerm(l.layer, l.weight * r.weight, m, n, r.grams[l.layer]))
            self._terms = hw, terms
        return self._terms[1]

    def loss_and_grad(self, x: torch.Tensor, precision: str | None = None) -> tuple[torch.Tensor, dict]:
        """Total loss and terms at `x`; the gradient is accumulated into whatever `x` came from."""
        s, precision = self.s, precision or self.precision
        # Elements of each layer's whole feature map: the n of gram() and of the content mean.
        counts = {name: self.net.layers[name].channels * self.geo.cells(name, x.shape[-2:]) for name in self.layers}
        xg = x.detach().requires_grad_(True)
        terms_ = self._style_terms(tuple(x.shape[-2:]), counts)
        diffs, csums = self._pass_one(xg, precision, terms_)
        style = sum(term.weight * d.pow(2).sum() for term, d in zip(terms_, diffs))
        content = sum(l.weight * csums[l.layer] / counts[l.layer] for l in s.content_layers)
        # dL/dF in closed form: the squared Gram difference gives 4/n (G - A) F (symmetrised, as
        # the untiled _GramLoss backward; a guided Gram's carries m^2 at each position), the mean
        # squared content difference 2/n (F - C).
        style_coef = [(d + d.t()) * (0.5 * s.style_weight * term.weight * 4 / term.n) for term, d in zip(terms_, diffs)]
        content_coef = {l.layer: s.content_weight * l.weight * 2 / counts[l.layer] for l in s.content_layers}
        for t, feats in run(self.net, xg, self.layers, self.tile, self.geo, self.device, precision):
            surrogate = xg.new_zeros(())
            grads: dict[str, torch.Tensor] = {}  # per layer, (h*w, C): the regions' shares summed
            for term, coef in zip(terms_, style_coef):
                if not _reaches(term, t):
                    continue
                g = rows(interior(feats[term.layer], t, term.layer).detach()) @ coef
                _add(grads, term.layer, g if term.mask is None else g * rows(t.of(term.mask, term.layer)).pow(2))
            for name, g in grads.items():
                part = interior(feats[name], t, name)
                n, c, ph, pw = part.shape
                surrogate = surrogate + (part * g.reshape(n, ph, pw, c).permute(0, 3, 1, 2)).sum()
            for name, coef in content_coef.items():
                part = interior(feats[name], t, name)
                surrogate = surrogate + coef * ((part.detach() - t.of(self.content[name], name)) * part).sum()
            surrogate.backward()
            del feats, surrogate
        terms = {"content": s.content_weight * content, "style": s.style_weight * style}
        link = (x * xg.grad).sum()  # hands the tiles' gradient on to x (and what x was made from)
        if s.tv_weight:
            terms["tv"] = s.tv_weight * total_variation(x)
            link = link + terms["tv"]
        link.backward()
        total = sum(v.detach() for v in terms.values())
        return total, {k: v.detach() for k, v in terms.items()}  # type: ignore[return-value]

    def _pass_one(self, x: torch.Tensor, precision: str,
                  terms: Sequence[_StyleTerm]) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """Without autograd: each style term's G - A over the whole image, and each content
        layer's summed squared difference."""
        raw: dict[str, torch.Tensor] = {}
        csums: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for t, feats in run(self.net, x, self.layers, self.tile, self.geo, self.device, precision):
                for i, term in enumerate(terms):
                    if not _reaches(term, t):
                        continue
                    part = interior(feats[term.layer], t, term.layer)
                    _add(raw, str(i), _gram_sum(part if term.mask is None else part * t.of(term.mask, term.layer)))
                for l in self.s.content_layers:
                    part = interior(feats[l.layer], t, l.layer)
                    _add(csums, l.layer, (part - t.of(self.content[l.layer], l.layer)).pow(2).sum())
        # A region no tile reaches (it vanished at this layer) has a zero Gram.
        return [raw.get(str(i), torch.zeros_like(term.target)) / term.n - term.target
                for i, term in enumerate(terms)], csums
