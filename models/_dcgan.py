"""DCGAN networks: the generator and discriminator we train, and the pretrained generators.

Ours follow the TensorFlow DCGAN tutorial's shapes with Radford et al.'s rules: the generator
projects z (and, when conditional, a one-hot label) with a dense layer to 4x4x512, then batch
norm, leaky ReLU and dropout, then transposed convolutions (batch norm and leaky ReLU between
them) up to the image, ending in tanh; the discriminator is strided convolutions with no pooling,
batch norm after all but the first, leaky ReLU, and a linear logit. Weights start N(0, 0.02), batch
norm's scales N(1, 0.02), as the paper says.

Every generator is exported to ONNX with one interface, whatever its origin: input `z` (N, latent)
and, for a conditional one, `label` (N, classes) one-hot; output `image` (N, C, H, W) in [-1, 1].
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["DCGANGenerator", "DCGANDiscriminator", "init_dcgan", "EyesGenerator", "DigitClassifier"]

_WIDTH = 512  # channels of the 4x4 projection (the discriminator starts at an eighth of it and doubles)
_SLOPE = 0.2  # leaky ReLU slope (Radford et al.)


def _up_layers(size: int) -> list[tuple[int, int, int]]:
    """(kernel, stride, padding) of the transposed convolutions from 4x4 up to `size`: 28 is
    4 -> 7 (k4 s1 p0) -> 14 -> 28; powers of two double each time (k4 s2 p1)."""
    if size == 28:
        return [(4, 1, 0), (4, 2, 1), (4, 2, 1)]
    side, layers = 4, []
    while side < size:
        layers.append((4, 2, 1))
        side *= 2
    if side != size:
        raise ValueError(f"no DCGAN generator for {size} px; allowed: 28 or a power of two from 8")
    return layers


class DCGANGenerator(nn.Module):
    """z (N, latent) [+ label one-hot (N, classes)] -> (N, channels, size, size) in [-1, 1]."""

    def __init__(self, *, latent: int, channels: int, size: int, classes: int = 0, dropout: float = 0.3,
                 width: int = _WIDTH) -> None:
        super().__init__()
        self.latent, self.channels, self.size, self.classes, self.width = latent, channels, size, classes, width
        self.project = nn.Linear(latent + classes, 4 * 4 * width, bias=False)  # BN follows: no bias
        self.head = nn.Sequential(nn.BatchNorm2d(width), nn.LeakyReLU(_SLOPE), nn.Dropout(dropout))
        layers: list[nn.Module] = []
        cin = width
        ups = _up_layers(size)
        for i, (k, s, p) in enumerate(ups):
            last = i == len(ups) - 1
            cout = channels if last else max(cin // 2, width // 8)
            layers.append(nn.ConvTranspose2d(cin, cout, k, s, p, bias=last))
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(cout), nn.LeakyReLU(_SLOPE)]
            cin = cout
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        if self.classes:
            z = torch.cat([z, label], 1)
        return self.body(self.head(self.project(z).view(-1, self.width, 4, 4)))


class DCGANDiscriminator(nn.Module):
    """(N, channels, size, size) [+ label one-hot] -> (N,) logits that the images are real.

    A conditional one sees the label as `classes` constant planes stacked on the image (the
    conditioning of Mirza and Osindero, in the form most DCGAN ports use)."""

    def __init__(self, *, channels: int, size: int, classes: int = 0, width: int = _WIDTH) -> None:
        super().__init__()
        self.classes = classes
        layers: list[nn.Module] = []
        cin, cout, side = channels + classes, width // 8, size
        while side > 4:
            k = 4 if side % 2 == 0 else 3  # 7 -> 4 needs k3 (k4 would give 3)
            layers.append(nn.Conv2d(cin, cout, k, 2, 1, bias=not layers))
            if layers[:-1]:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(_SLOPE))
            side = (side + 2 - k) // 2 + 1
            cin, cout = cout, min(cout * 2, width)
        self.body = nn.Sequential(*layers)
        self.logit = nn.Linear(cin * side * side, 1)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        if self.classes:
            x = torch.cat([x, label[:, :, None, None].expand(-1, -1, *x.shape[-2:])], 1)
        return self.logit(self.body(x).flatten(1)).squeeze(1)


def init_dcgan(module: nn.Module) -> None:
    """Radford et al.'s initialisation: every weight N(0, 0.02); batch norm's scale N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _tutorial_body(latent_in: int, ngf: int, channels: int, doublings: int, first_dropout: float = 0.0) -> nn.Sequential:
    """The PyTorch DCGAN tutorial's generator body (keys main.N as its ports save them): a 4x4
    transposed convolution from the 1x1 input, then `doublings` k4 s2 p1 ones, the last to tanh."""
    width = ngf * 2 ** (doublings - 1)
    layers: list[nn.Module] = [nn.ConvTranspose2d(latent_in, width, 4, 1, 0, bias=False), nn.BatchNorm2d(width),
                               nn.ReLU(True)]
    if first_dropout:
        layers.append(nn.Dropout(first_dropout))
    for i in range(doublings):
        last = i == doublings - 1
        cout = channels if last else width // 2
        layers.append(nn.ConvTranspose2d(width, cout, 4, 2, 1, bias=False))
        layers += [nn.Tanh()] if last else [nn.BatchNorm2d(cout), nn.ReLU(True)]
        width = cout
    return nn.Sequential(*layers)


class EyesGenerator(nn.Module):
    """`omniart-eye-generator`'s conditional generator: 100-d z plus a one-hot of 8 eye colours,
    128x128 RGB (the tutorial's body at ngf 64 with one more doubling, and dropout 0.2 after the first block)."""

    latent, classes, channels, size = 100, 8, 3, 128

    def __init__(self) -> None:
        super().__init__()
        self.main = _tutorial_body(108, 64, 3, 5, first_dropout=0.2)

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.main(torch.cat([z, label], 1)[:, :, None, None])


class DigitClassifier(nn.Module):
    """A small MNIST classifier (two conv blocks and two dense layers): the digit score's judge.
    (N, 1, 28, 28) in [-1, 1] -> (N, 10) logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25),
                                  nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
