"""GAN training data: MNIST from the model store, or the caller's images, as uint8 tensors.

Every source ends as `TrainingData`: uint8 (N, C, size, size) images at the training size, with
labels for MNIST. The caller's images (many, or one tar/zip archive) are checked against the
limits on count, bytes and pixels from the archive's directory and each image's header before
anything decodes; then each is decoded, converted to the channels asked for, resized so its
shorter side is the training size and centre-cropped, straight into one preallocated array. So
memory is the array (at most max_images x size^2 x C bytes) plus one decoded image at a time.
"""
from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dreamrender.errors import InvalidArgumentError
from dreamrender.models import ModelStore, weights_path

from .codec import decode_image, probe_image

__all__ = ["TrainingData", "DataLimits", "load_mnist", "mnist_arrays", "read_images", "read_archive", "archive_members",
           "MNIST_SETS"]

MNIST_SETS = ("mnist", "mnist_full")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class TrainingData:
    images: torch.Tensor  # uint8 (N, C, size, size)
    labels: torch.Tensor | None = None  # int64 (N,), MNIST only

    @property
    def classes(self) -> int:
        return int(self.labels.max()) + 1 if self.labels is not None else 0


@dataclass(frozen=True)
class DataLimits:
    """What one training request may bring (the operator's; defaults in ServerConfig)."""

    max_images: int = 20_000
    max_bytes: int = 512 << 20  # an archive's members, uncompressed, in all
    max_pixels: int = 16_000_000  # one image, from its header


# -- MNIST ---------------------------------------------------------------------------------

class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: the file is checked by SHA-256, but a pickle can
    run code, so the classes it may name are held to the three an array needs."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}  # Python 3's bytes in protocol 2

    def find_class(self, module: str, name: str):  # type: ignore[override]
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a dataset pickle")
        if name == "_reconstruct":  # numpy 2 moved it to numpy._core (the real file names numpy.core)
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        if module == "_codecs":
            import codecs

            return codecs.encode
        return getattr(np, name)


def _read_mnist_file(path: Path, fmt: str) -> dict[str, np.ndarray]:
    """{"images": uint8 (N, 28, 28), "labels": int64 (N,)} (+ "test_*" for the pickle)."""
    if fmt == "mnist_csv":  # 784 pixel values, then the label, per row
        rows = np.loadtxt(gzip.open(path, "rt"), delimiter=",", dtype=np.int64)
        return {"images": rows[:, :784].astype(np.uint8).reshape(-1, 28, 28), "labels": rows[:, 784]}
    with gzip.open(path, "rb") as f:
        (train_x, train_y), _val, (test_x, test_y) = _ArraysOnly(f, encoding="latin1").load()
    # Pixels are stored as k/256 in float32: back to the bytes they were.
    as_bytes = lambda x: np.round(x * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)  # noqa: E731
    return {"images": as_bytes(train_x), "labels": train_y.astype(np.int64),
            "test_images": as_bytes(test_x), "test_labels": test_y.astype(np.int64)}


def mnist_arrays(store: ModelStore, name: str) -> dict[str, np.ndarray]:
    """The arrays of MNIST set `name`, converted once and cached beside the download (the pickle
    takes seconds to read; the cache, a fraction)."""
    from dreamrender.models import get_spec

    path = weights_path(name, store)  # WeightsError naming `dreamctl models pull` when absent
    cache = path.with_name(path.name + ".npz")
    if not cache.is_file():
        arrays = _read_mnist_file(path, get_spec(name).sources[0].fmt)
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(cache)
    with np.load(cache) as data:
        return {k: data[k] for k in data.files}


def _to_size(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, 1, 28, 28) digits at `size`: 32 is padded by 2 px (LeNet's framing; the strokes
    keep their width), others are resized bilinearly."""
    if size == 28:
        return images
    if size == 32:
        return F.pad(images, (2, 2, 2, 2))
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


def load_mnist(store: ModelStore, name: str, size: int, channels: int = 1) -> TrainingData:
    arrays = mnist_arrays(store, name)
    images = _to_size(torch.from_numpy(arrays["images"])[:, None], size)
    return TrainingData(images.expand(-1, channels, -1, -1).contiguous(), torch.from_numpy(arrays["labels"]))


# -- the caller's images ----------------------------------------------------------------------

def archive_members(data: bytes, field: str, limits: DataLimits) -> list[tuple[str, int]]:
    """(name, size) of an archive's image members, from its directory (zip) or headers (tar):
    the count and the uncompressed bytes are checked before any member is read."""
    members: list[tuple[str, int]] = []
    for name, size in _directory(data, field):
        if name.lower().endswith(_IMAGE_SUFFIXES) and "/." not in "/" + name:
            members.append((name, size))
        if len(members) > limits.max_images:
            raise InvalidArgumentError(field, f"more than {limits.max_images:,} images in the archive",
                                       f"at most {limits.max_images:,} images")
    total = sum(size for _, size in members)
    if total > limits.max_bytes:
        raise InvalidArgumentError(field, f"its images are {total / 2**20:,.0f} MiB uncompressed",
                                   f"at most {limits.max_bytes / 2**20:,.0f} MiB")
    if not members:
        raise InvalidArgumentError(field, "the archive holds no images", f"files ending {', '.join(_IMAGE_SUFFIXES)}")
    return members


def _directory(data: bytes, field: str) -> Iterator[tuple[str, int]]:
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            yield from ((i.filename, i.file_size) for i in z.infolist() if not i.is_dir())
        return
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as t:
            for m in t:  # headers only: the data of a member is skipped, not read
                if m.isfile():
                    yield m.name, m.size
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidArgumentError(field, f"not a zip or tar archive ({type(exc).__name__})",
                                   "a zip, tar, tar.gz or tar.bz2 archive of images") from None


def _read_members(data: bytes, names: set[str]) -> Iterator[tuple[str, bytes]]:
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for info in z.infolist():
                if info.filename in names:
                    with z.open(info) as f:
                        yield info.filename, f.read(info.file_size + 1)[: info.file_size]  # no more than it declared
        return
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as t:
        for m in t:
            if m.isfile() and m.name in names:
                f = t.extractfile(m)
                if f is not None:
                    yield m.name, f.read(m.size)


def _fit(img: Image.Image, size: int) -> Image.Image:
    """Resized so the shorter side is `size`, then centre-cropped to a square."""
    w, h = img.size
    scale = size / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.LANCZOS)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    return img.crop((left, top, left + size, top + size))


def _fill(source: Callable[[], Iterator[tuple[str, bytes]]], n: int, *, size: int, channels: int,
          limits: DataLimits) -> TrainingData:
    """Two passes over `source` (field path, bytes), one image in memory at a time: every header
    is probed first, then each image is decoded into the preallocated array."""
    for path, data in source():
        probe_image(data, path, max_pixels=limits.max_pixels)
    out = np.empty((n, size, size, channels), np.uint8)
    for i, (path, data) in enumerate(source()):
        img = _fit(decode_image(data, path, max_pixels=limits.max_pixels, min_long_side=size), size)
        out[i] = np.asarray(img.convert("L" if channels == 1 else "RGB")).reshape(size, size, channels)
    return TrainingData(torch.from_numpy(out).permute(0, 3, 1, 2).contiguous())


def read_images(items: list[tuple[str, bytes]], *, size: int, channels: int, limits: DataLimits,
                field: str = "images") -> TrainingData:
    """The caller's encoded images as training data. `items` are (field path, bytes)."""
    if not items:
        raise InvalidArgumentError(field, "no training images", "images, or an archive of them")
    if len(items) > limits.max_images:
        raise InvalidArgumentError(field, f"{len(items):,} images", f"at most {limits.max_images:,}")
    return _fill(lambda: iter(items), len(items), size=size, channels=channels, limits=limits)


def read_archive(data: bytes, *, size: int, channels: int, limits: DataLimits, field: str = "archive") -> TrainingData:
    """A tar/zip archive of images as training data (limits checked from its directory first)."""
    members = archive_members(data, field, limits)
    wanted = {name for name, _ in members}
    return _fill(lambda: ((f"{field}[{name}]", body) for name, body in _read_members(data, wanted)), len(members),
                 size=size, channels=channels, limits=limits)
