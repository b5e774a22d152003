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


def _keras_vgg_h5(path: Path) -> dict[str, torch.Tensor]:
    """A Keras VGG `.h5` weight file (`tf_dim_ordering`), in torchvision's `features.N` keys.

    Its conv layers come in order as `blockN_convM` groups holding an HWIO kernel and a bias;
    the k-th conv is torchvision's `features.{2k + pools before it}`. Keras' convolution is a
    cross-correlation, as torch's is, so the kernel is only transposed (to OIHW), not flipped.
    The input channel order is BGR with the Caffe means subtracted (the catalog's CAFFE_NORM).
    """
    import h5py

    sd: dict[str, torch.Tensor] = {}
    with h5py.File(path, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs["layer_names"]]
        index = 0
        for name in names:
            if name.endswith("_pool"):
                index += 1
            elif "_conv" in name:
                kernel, bias = sorted(f[name].values(), key=lambda d: len(d.shape), reverse=True)[:2]
                sd[f"features.{index}.weight"] = torch.from_numpy(np.array(kernel, np.float32).transpose(3, 2, 0, 1).copy())
                sd[f"features.{index}.bias"] = torch.from_numpy(np.array(bias, np.float32))
                index += 2
    return sd


def _fid_inception_torchscript(path: Path) -> dict[str, torch.Tensor]:
    """The FID Inception v3 TorchScript file's tensors, keyed as models/_inception.py names them."""
    import warnings

    prefix = "net.layers."
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript, but this file is TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.load(str(path), map_location="cpu")
    return {k[len(prefix):]: v.detach().clone() for k, v in scripted.state_dict().items() if k.startswith(prefix)}


_READERS = {
    "torch": lambda path: torch.load(str(path), map_location="cpu", weights_only=True),
    "keras_vgg16_onnx": _keras_vgg16_onnx,
    "keras_vgg_h5": _keras_vgg_h5,
    "fid_inception_torchscript": _fid_inception_torchscript,
}


def load_state_dict(path: Path, fmt: str) -> dict[str, torch.Tensor]:
    """Read `path` in format `fmt` (a key of _READERS)."""
    if fmt not in _READERS:
        raise ValueError(f"unknown weight format {fmt!r}; allowed: {', '.join(_READERS)}")
    return _READERS[fmt](path)
