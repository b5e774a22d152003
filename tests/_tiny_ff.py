"""Tiny stand-ins for the feed-forward ONNX networks, with the real ones' inputs, outputs and layouts.

The arbitrary-style transformer is exported at a fixed 384x384, like the real file, so the tests go
through `free_size_model` too.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dreamrender.models import FEED_FORWARD_MODELS, ModelStore, get_spec, onnx_export


class _Predict(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 100, 8, stride=8)

    def forward(self, style_image: torch.Tensor) -> torch.Tensor:  # (1, 256, 256, 3) -> (1, 1, 1, 100)
        x = self.conv(style_image.permute(0, 3, 1, 2))
        return x.mean(dim=(2, 3), keepdim=True).permute(0, 2, 3, 1)


class _Transform(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.down1, self.down2 = nn.Conv2d(3, 8, 3, 2, 1), nn.Conv2d(8, 8, 3, 2, 1)
        self.style = nn.Conv2d(100, 8, 1)
        self.out = nn.Conv2d(8, 3, 3, 1, 1)

    def forward(self, content: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:  # NHWC in, NHWC out
        x = torch.relu(self.down2(torch.relu(self.down1(content.permute(0, 3, 1, 2)))))
        x = x + self.style(vec.permute(0, 3, 1, 2))
        x = F.interpolate(F.interpolate(x, scale_factor=2.0), scale_factor=2.0)
        return torch.sigmoid(self.out(x)).permute(0, 2, 3, 1)


class _Multistyle(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, 1, 1)
        self.table = nn.Parameter(torch.randn(26, 3))

    def forward(self, image: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        bias = (style_weights @ self.table).view(1, 3, 1, 1)
        return torch.sigmoid(self.conv(image) * 3 + bias)


def _export(module: nn.Module, args: tuple, names: list[str], output: str, dynamic: dict | None = None) -> bytes:
    buf = io.BytesIO()
    # Through the package's lock: a server thread of an earlier test may be exporting right now.
    onnx_export(module.eval(), args, buf, opset_version=17, input_names=names, output_names=[output],
                dynamic_axes=dynamic)
    return buf.getvalue()


def write_tiny_feed_forward(root: Path) -> None:
    """Put tiny feed-forward networks where the store looks for the real ones."""
    torch.manual_seed(0)
    files = {
        "arbitrary_predict": _export(_Predict(), (torch.rand(1, 256, 256, 3),), ["style_image"], "vector"),
        "arbitrary_transform": _export(_Transform(), (torch.rand(1, 384, 384, 3), torch.rand(1, 1, 1, 100)),
                                       ["content_image", "style_vector"], "stylized"),
        "multistyle26": _export(_Multistyle(), (torch.rand(1, 3, 64, 64), torch.rand(26)), ["image", "style_weights"],
                                "stylized", {"image": {2: "h", 3: "w"}, "stylized": {2: "h", 3: "w"}}),
    }
    store = ModelStore(root)
    assert set(files) == {n for names in FEED_FORWARD_MODELS.values() for n in names}
    for name, data in files.items():
        path = store.path(name, get_spec(name).sources[0])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
