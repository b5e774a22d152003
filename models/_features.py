"""FeatureNet: a network that returns the activations of named layers, and stops early."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterable, Mapping

import torch
from torch import nn

__all__ = ["FeatureNet", "Normalization", "LayerSpec"]


@dataclass(frozen=True)
class Normalization:
    """How an RGB image in [0, 1] becomes the network's input.

    Caffe-trained VGG weights want BGR in 0-255 minus the channel means; torchvision weights
    want RGB in [0, 1] standardised by ImageNet mean and std.
    """

    mean: tuple[float, float, float]  # in the network's channel order and value range
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0  # multiply [0, 1] by this first (255 for Caffe)
    bgr: bool = False

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            x = x.flip(1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * self.scale - mean) / std


@dataclass(frozen=True)
class LayerSpec:
    """A layer a request may name: its public name, module path and channel count."""

    name: str
    module: str
    channels: int


class _StopForward(Exception):
    """Raised by a hook once the deepest requested layer has been computed."""


class FeatureNet(nn.Module):
    """Runs `net` on normalised input and returns the outputs of the requested layers.

    The forward pass is cut right after the deepest requested layer (a hook raises), so a
    request for relu1_1 costs one conv, whatever the architecture.
    """

    def __init__(self, name: str, net: nn.Module, layers: Iterable[LayerSpec], norm: Normalization,
                 min_side: int = 32) -> None:
        super().__init__()
        self.name = name
        self.min_side = min_side
        self.channels_last = False
        self.net = net.eval().requires_grad_(False)
        self.layers: dict[str, LayerSpec] = {spec.name: spec for spec in layers}
        self.norm = norm
        modules = dict(self.net.named_modules())
        missing = [s.module for s in self.layers.values() if s.module not in modules]
        if missing:
            raise ValueError(f"{name}: layer modules not in the network: {missing}")
        self._modules_by_path = modules

    def layer_names(self) -> list[str]:
        return list(self.layers)

    def forward(self, image: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:  # type: ignore[override]
        """`image`: (N, 3, H, W) RGB in [0, 1]. Returns {layer name: activation}."""
        wanted = [self.layers[name] for name in layers]
        by_module: dict[str, list[str]] = {}
        for spec in wanted:
            by_module.setdefault(spec.module, []).append(spec.name)
        outputs: dict[str, torch.Tensor] = {}
        remaining = len(by_module)
        handles = []

        def make_hook(names: list[str]):
            def hook(_mod: nn.Module, _inp: object, out: torch.Tensor) -> None:
                nonlocal remaining
                for n in names:
                    outputs[n] = out
                remaining -= 1
                if remaining == 0:
                    raise _StopForward

            return hook

        for path, names in by_module.items():
            handles.append(self._modules_by_path[path].register_forward_hook(make_hook(names)))
        x = self.norm.apply(image)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        try:
            self.net(x)
        except _StopForward:
            pass
        finally:
            for h in handles:
                h.remove()
        return outputs

    def use_channels_last(self, enabled: bool = True) -> "FeatureNet":
        """Run convolutions in NHWC layout (measured ~25% faster fwd+bwd for VGG16 on this CPU:
        bench/bench_style.py; the usual advice on CUDA too)."""
        self.channels_last = enabled
        fmt = torch.channels_last if enabled else torch.contiguous_format
        self.net.to(memory_format=fmt)
        return self

    def with_pooling(self, kind: str) -> "FeatureNet":
        """A copy sharing the weights whose max-pooling layers are `kind` ("max" or "average")."""
        if kind == "max":
            return self
        net = copy.copy(self.net)  # shallow: parameters are shared
        net = _replace_pooling(net)
        other = FeatureNet(self.name, net, self.layers.values(), self.norm, self.min_side)
        other.channels_last = self.channels_last
        return other

    def layer_map(self) -> Mapping[str, LayerSpec]:
        return self.layers


def _replace_pooling(module: nn.Module) -> nn.Module:
    new = copy.copy(module)
    new._modules = dict(module._modules)  # type: ignore[assignment]
    for key, child in module._modules.items():
        if child is None:
            continue
        if isinstance(child, nn.MaxPool2d):
            new._modules[key] = nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                             ceil_mode=child.ceil_mode)
        else:
            new._modules[key] = _replace_pooling(child)
    return new
