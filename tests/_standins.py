"""Stand-ins for the real weight files, with the same tensor names and shapes and random values,
so that the loaders are tested offline: FID's Inception v3 TorchScript file and Keras' VGG19 .h5."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dreamrender.models import _nets
from dreamrender.models._inception import InceptionV3

# The real Keras file's layer order (its `layer_names` attribute), pools included.
KERAS_VGG19_LAYERS = ["input_2"] + [
    name for block, convs in enumerate((2, 2, 4, 4, 4), 1)
    for name in [f"block{block}_conv{i}" for i in range(1, convs + 1)] + [f"block{block}_pool"]]


class _FidWrapper(nn.Module):
    """The TorchScript file's shape: `net.layers` runs the blocks, then an average pool (the real
    file's is 8x8, for 299 px inputs; this one averages whatever size comes)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Module()
        self.net.layers = InceptionV3()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(self.net.layers(x), 1).reshape(-1, 2048)


def write_fid_inception(path: Path, seed: int = 0) -> nn.Module:
    """A TorchScript Inception v3 with FID's 376 tensor names and shapes and seeded random values;
    returns the scripted module (its forward is the reference our module must match)."""
    torch.manual_seed(seed)
    wrapper = _FidWrapper().eval()
    with torch.no_grad():
        for name, buf in wrapper.named_buffers():
            if name.endswith(".var"):
                buf.uniform_(0.5, 1.5)
            elif name.endswith(".mean"):
                buf.normal_(0, 0.1)
        for name, p in wrapper.named_parameters():
            if name.endswith(".beta"):
                p.normal_(0, 0.1)
    with warnings.catch_warnings():  # TorchScript is deprecated, and the real file is TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.trace(wrapper, torch.rand(1, 3, 96, 96))
    path.parent.mkdir(parents=True, exist_ok=True)
    scripted.save(str(path))
    return scripted


def write_keras_vgg19_h5(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """A Keras VGG19 notop .h5 (`blockN_convM/blockN_convM_W_1:0` HWIO kernels and `_b_1:0`
    biases, `layer_names` in order) with seeded random values; returns {conv name: HWIO kernel}."""
    import h5py

    rng = np.random.default_rng(seed)
    kernels: dict[str, np.ndarray] = {}
    channels = [int(v) for v in _nets.VGG19_CFG if v != "M"]
    cin = 3
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in KERAS_VGG19_LAYERS])
        convs = [n for n in KERAS_VGG19_LAYERS if "_conv" in n]
        for name, cout in zip(convs, channels):
            group = f.create_group(name)
            kernel = (rng.standard_normal((3, 3, cin, cout)) * np.sqrt(2 / (9 * cin))).astype(np.float32)
            group.create_dataset(f"{name}_W_1:0", data=kernel)
            group.create_dataset(f"{name}_b_1:0", data=(rng.standard_normal(cout) * 0.01).astype(np.float32))
            kernels[name] = kernel
            cin = cout
        for name in KERAS_VGG19_LAYERS:
            if "_conv" not in name:
                f.create_group(name)
    return kernels


def _digit_like(label: int, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 uint8 picture that a classifier can tell by its label: a bar at a place and angle
    of the label's own (MNIST's size and value range, not its shapes)."""
    img = np.zeros((28, 28), np.uint8)
    yy, xx = np.mgrid[0:28, 0:28]
    angle = label * np.pi / 10
    cy, cx = 14 + rng.integers(-1, 2), 14 + rng.integers(-1, 2)
    dist = np.abs((yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle))
    along = np.abs((yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle))
    img[(dist < 2) & (along < 4 + label)] = 255
    return img


def write_mnist_standins(root: Path, per_class: int = 20, seed: int = 0) -> None:
    """Tiny `mnist` (the csv.gz of 784 pixels and a label per row) and `mnist_full` (the pickle of
    train/val/test arrays, pixels as k/256 float32) files where the store looks for the real ones."""
    import gzip
    import pickle

    from dreamrender.models import ModelStore, get_spec

    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), per_class)
    images = np.stack([_digit_like(int(k), rng) for k in labels])
    store = ModelStore(root)
    csv = store.path("mnist", get_spec("mnist").sources[0])
    csv.parent.mkdir(parents=True, exist_ok=True)
    rows = np.concatenate([images.reshape(len(labels), -1), labels[:, None]], 1)
    with gzip.open(csv, "wt") as f:
        f.write("\n".join(",".join(map(str, r)) for r in rows) + "\n")
    part = (images.reshape(len(labels), -1).astype(np.float32) / 256, labels.astype(np.int64))
    pkl = store.path("mnist_full", get_spec("mnist_full").sources[0])
    pkl.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(pkl, "wb") as f:
        pickle.dump((part, part, part), f, protocol=2)
