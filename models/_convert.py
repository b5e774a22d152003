"""Readers that turn a stored weight file into a torchvision-keyed state dict."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["load_state_dict"]

# Keras VGG16 conv blocks -> torchvision `features.N` indices (conv layers of cfg "D").
_KERAS_VGG16 = {
    (1, 1): 0, (1, 2): 2, (2, 1): 5, (2, 2): 7, (3, 1): 10, (3, 2): 12, (3, 3): 14,
    (4, 1): 17, (4, 2): 19, (4, 3): 21, (5, 1): 24, (5, 2): 26, (5, 3): 28,
}


def _keras_vgg16_onnx(path: Path) -> dict[str, torch.Tensor]:
    """The ImageNet VGG16 conv weights inside a tf2onnx export of a Keras VGG16 model.

    Tensor names are `functional_1/blockN_convM_1/convolution/ReadVariableOp:0` (OIHW) and
    `.../Squeeze:0` (bias). The input channel order of block1_conv1 is BGR (Caffe convention),
    which the catalog entry's Normalization supplies. Whatever head the file has is ignored.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    inits = {i.name: i for i in model.graph.initializer}
    sd: dict[str, torch.Tensor] = {}
    for (block, conv), idx in _KERAS_VGG16.items():
        prefix = f"functional_1/block{block}_conv{conv}_1"
        w = numpy_helper.to_array(inits[f"{prefix}/convolution/ReadVariableOp:0"])
        b = numpy_helper.to_array(inits[f"{prefix}/Squeeze:0"])
        sd[f"features.{idx}.weight"] = torch.from_numpy(np.array(w, dtype=np.float32))
        sd[f"features.{idx}.bias"] = torch.from_numpy(np.array(b, dtype=np.float32))
    return sd


def load_state_dict(path: Path, fmt: str) -> dict[str, torch.Tensor]:
    """Read `path` in format `fmt` ("torch" or "keras_vgg16_onnx")."""
    if fmt == "torch":
        return torch.load(str(path), map_location="cpu", weights_only=True)
    if fmt == "keras_vgg16_onnx":
        return _keras_vgg16_onnx(path)
    raise ValueError(f"unknown weight format {fmt!r}; allowed: torch, keras_vgg16_onnx")
