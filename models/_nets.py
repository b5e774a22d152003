"""Network architectures with torchvision-compatible state-dict keys.

PyPI's torchvision does not import beside the torch build this project uses, so the few
architectures we need are defined here. Key names match torchvision's so that its official
weight files load unchanged. Activations are never in-place: we read intermediate outputs
(conv and pre-ReLU values), which an in-place ReLU would overwrite.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["VGG", "vgg_layer_names", "MobileNetV2", "GoogLeNet", "VGG16_CFG", "VGG19_CFG", "TINY_CFG"]

VGG16_CFG: tuple = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
VGG19_CFG: tuple = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                    512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
# A VGG-shaped net small enough for tests: the same layer names as VGG up to relu5_1.
TINY_CFG: tuple = (8, "M", 12, "M", 16, "M", 16, 16, "M", 16)


class VGG(nn.Module):
    """VGG's convolutional part, keys `features.N.weight` as in torchvision (no classifier)."""

    def __init__(self, cfg: Sequence) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_ch, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                in_ch = int(v)
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def vgg_layer_names(cfg: Sequence) -> list[tuple[str, str, int]]:
    """(public name, module path, channels) for every conv, relu and pool of a VGG cfg."""
    out: list[tuple[str, str, int]] = []
    block, conv, idx, ch = 1, 0, 0, 3
    for v in cfg:
        if v == "M":
            out.append((f"pool{block}", f"features.{idx}", ch))
            block, conv, idx = block + 1, 0, idx + 1
        else:
            conv, ch = conv + 1, int(v)
            out.append((f"conv{block}_{conv}", f"features.{idx}", ch))
            out.append((f"relu{block}_{conv}", f"features.{idx + 1}", ch))
            idx += 2
    return out


class _ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=False),
        )


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_ConvBNReLU(cin, hidden, k=1))
        layers += [_ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2 (width 1.0) feature extractor; `classifier` kept for key parity."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self) -> None:
        super().__init__()
        feats: list[nn.Module] = [_ConvBNReLU(3, 32, stride=2)]
        cin = 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                feats.append(_InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        feats.append(_ConvBNReLU(cin, 1280, k=1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    @classmethod
    def block_channels(cls) -> list[int]:
        chans = [32]
        for _t, c, n, _s in cls.SETTINGS:
            chans += [c] * n
        return chans + [1280]


class _BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, **kw) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class _Inception(nn.Module):
    def __init__(self, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pp: int) -> None:
        super().__init__()
        self.branch1 = _BasicConv2d(cin, c1, kernel_size=1)
        self.branch2 = nn.Sequential(_BasicConv2d(cin, c3r, kernel_size=1),
                                     _BasicConv2d(c3r, c3, kernel_size=3, padding=1))
        # torchvision keeps a 3x3 here where the paper has 5x5 (a known quirk of its port).
        self.branch3 = nn.Sequential(_BasicConv2d(cin, c5r, kernel_size=1),
                                     _BasicConv2d(c5r, c5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                     _BasicConv2d(cin, pp, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


GOOGLENET_INCEPTIONS: dict[str, tuple[int, ...]] = {
    "3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


class GoogLeNet(nn.Module):
    """torchvision's GoogLeNet (Inception v1) without the aux heads (ignored on load)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = _BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = _BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = _BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        for k in ("3a", "3b"):
            setattr(self, f"inception{k}", _Inception(*GOOGLENET_INCEPTIONS[k]))
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        for k in ("4a", "4b", "4c", "4d", "4e"):
            setattr(self, f"inception{k}", _Inception(*GOOGLENET_INCEPTIONS[k]))
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        for k in ("5a", "5b"):
            setattr(self, f"inception{k}", _Inception(*GOOGLENET_INCEPTIONS[k]))
        self.fc = nn.Linear(1024, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        for k in ("4a", "4b", "4c", "4d", "4e"):
            x = getattr(self, f"inception{k}")(x)
        x = self.maxpool4(x)
        return self.inception5b(self.inception5a(x))


def googlenet_layer_names() -> list[tuple[str, str, int]]:
    """TF inception5h names mapped onto torchvision's GoogLeNet where the layers correspond.

    `*_pre_relu` reads the BatchNorm output (torchvision's port has BN where the original had
    none, so "pre-ReLU" is the value just before the ReLU, as in the original).
    """
    out = [("conv2d0_pre_relu", "conv1.bn", 64), ("conv2d0", "conv1", 64), ("maxpool0", "maxpool1", 64),
           ("conv2d1_pre_relu", "conv2.bn", 64), ("conv2d1", "conv2", 64),
           ("conv2d2_pre_relu", "conv3.bn", 192), ("conv2d2", "conv3", 192), ("maxpool1", "maxpool2", 192)]
    for k, (_cin, c1, c3r, c3, c5r, c5, pp) in GOOGLENET_INCEPTIONS.items():
        m, mod = f"mixed{k}", f"inception{k}"
        out += [
            (f"{m}_1x1_pre_relu", f"{mod}.branch1.bn", c1), (f"{m}_1x1", f"{mod}.branch1", c1),
            (f"{m}_3x3_bottleneck_pre_relu", f"{mod}.branch2.0.bn", c3r),
            (f"{m}_3x3_bottleneck", f"{mod}.branch2.0", c3r),
            (f"{m}_3x3_pre_relu", f"{mod}.branch2.1.bn", c3), (f"{m}_3x3", f"{mod}.branch2.1", c3),
            (f"{m}_5x5_bottleneck_pre_relu", f"{mod}.branch3.0.bn", c5r),
            (f"{m}_5x5_bottleneck", f"{mod}.branch3.0", c5r),
            (f"{m}_5x5_pre_relu", f"{mod}.branch3.1.bn", c5), (f"{m}_5x5", f"{mod}.branch3.1", c5),
            (f"{m}_pool_reduce_pre_relu", f"{mod}.branch4.1.bn", pp),
            (f"{m}_pool_reduce", f"{mod}.branch4.1", pp),
            (m, mod, c1 + c3 + c5 + pp),
        ]
    return out


def mobilenet_v2_layer_names() -> list[tuple[str, str, int]]:
    """`block0`..`block18`: the outputs of torchvision's `features.N`."""
    return [(f"block{i}", f"features.{i}", c) for i, c in enumerate(MobileNetV2.block_channels())]
