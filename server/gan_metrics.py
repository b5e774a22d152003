"""How good a generator is: FID on Inception v3's pool features, and, for digits, a classifier score.

- **FID** (Heusel et al. 2017): the Fréchet distance between Gaussians fitted to the 2048-d
  average-pool features of real and generated images, on the catalog's `inception_v3` (Google's
  inception-2015-12-05, the network every FID uses), images resized to 299 px as FID does. The
  real statistics are computed once per dataset and size, and cached. A CPU makes hundreds of
  samples affordable, not FID's usual 50,000, so values are higher than published ones (FID is
  biased upwards at small N) and comparable only at equal sample counts: the count is reported.
- **Digit score**: a small classifier trained once on MNIST's 10,000 test digits (held out from
  both training sets) and kept in the store. It reports the fraction of samples it classifies
  with p > 0.9 and the histogram of their classes (mode collapse shows as a skewed histogram).
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from dreamrender.models import DigitClassifier, FeatureNet, ModelStore

from .datasets import mnist_arrays

__all__ = ["digit_classifier", "digit_score", "fid", "FidReference", "fid_cache", "pool_features", "scorer",
           "CONFIDENT"]

log = logging.getLogger(__name__)
CONFIDENT = 0.9  # a sample counts as a clear digit when the classifier gives its class this much
_TRAIN_EPOCHS = 10
_lock = threading.Lock()


def _classifier_path(store: ModelStore) -> Path:
    return store.root / "scorers" / "mnist_digits.pt"


def _train_classifier(images: np.ndarray, labels: np.ndarray, seed: int = 0) -> DigitClassifier:
    """Adam, batch 128, _TRAIN_EPOCHS passes with a shift of up to 2 px as augmentation
    (generated digits are less centred than MNIST's)."""
    torch.manual_seed(seed)
    net = DigitClassifier()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.from_numpy(images).float().div(127.5).sub(1)[:, None]
    y = torch.from_numpy(labels)
    for _ in range(_TRAIN_EPOCHS):
        for idx in torch.randperm(len(x)).split(128):
            dx, dy = torch.randint(-2, 3, (2,)).tolist()
            batch = torch.roll(x[idx], (dy, dx), (2, 3))
            loss = F.cross_entropy(net(batch), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def digit_classifier(store: ModelStore) -> DigitClassifier:
    """The store's digit classifier, trained (about half a minute on 2 cores) the first time."""
    path = _classifier_path(store)
    with _lock:
        net = DigitClassifier()
        if path.is_file():
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return net.eval()
        arrays = mnist_arrays(store, "mnist_full")
        net = _train_classifier(arrays["test_images"], arrays["test_labels"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(net.state_dict(), tmp)
        tmp.replace(path)
        log.info("trained the MNIST digit scorer on the 10,000 test digits; kept in %s", path)
        return net


@torch.no_grad()
def digit_score(classifier: DigitClassifier, samples: torch.Tensor) -> dict[str, float]:
    """{"digit_score": fraction classified with p > CONFIDENT, "digit_0".."digit_9": each class's
    share of those confident samples}. `samples`: (N, 1, 28 or 32 or 64, same) in [-1, 1]."""
    if samples.shape[-1] != 28:
        samples = F.interpolate(samples, size=(28, 28), mode="bilinear", align_corners=False, antialias=True)
    p = torch.cat([F.softmax(classifier(b), 1) for b in samples.split(256)])
    best, cls = p.max(1)
    sure = cls[best > CONFIDENT]
    hist = torch.bincount(sure, minlength=10).float() / max(len(sure), 1)
    return {"digit_score": float((best > CONFIDENT).float().mean())} | {f"digit_{i}": float(h) for i, h in enumerate(hist)}


@torch.no_grad()
def pool_features(net: FeatureNet, images: torch.Tensor, batch: int = 50) -> np.ndarray:
    """Inception v3's 2048-d pool features of (N, C, H, W) images in [-1, 1], at 299 px (grey
    images repeated to RGB), in float64."""
    out = []
    for b in images.split(batch):
        rgb = ((b.float() + 1) / 2).clamp(0, 1).expand(-1, 3, -1, -1)
        rgb = F.interpolate(rgb, size=(299, 299), mode="bilinear", align_corners=False)
        # FID's pool3: the global average of mixed10 (Inception's own 8x8 average pool at 299 px).
        out.append(net(rgb, ["mixed10"])["mixed10"].mean((2, 3)).double().numpy())
    return np.concatenate(out)


def _sqrtm_trace(a: np.ndarray, b: np.ndarray) -> float:
    """trace(sqrtm(a @ b)) for covariance matrices, through the eigenvalues of
    sqrt(a) b sqrt(a) (symmetric, so real and stable where scipy's sqrtm of a @ b is not)."""
    w, v = np.linalg.eigh(a)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root @ b @ root)
    return float(np.sqrt(np.clip(inner, 0, None)).sum())


def fid(real: tuple[np.ndarray, np.ndarray], fake: np.ndarray) -> float:
    """FID between real statistics (mean, covariance) and generated features (N, 2048)."""
    mu1, s1 = real
    mu2, s2 = fake.mean(0), np.cov(fake, rowvar=False)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * _sqrtm_trace(s1, s2))


class FidReference:
    """The real images' Inception statistics for one dataset, from `count` of its images; with a
    `cache` file (the MNIST sets: the same images every run) they are computed once and kept."""

    def __init__(self, net: FeatureNet, images: torch.Tensor, count: int, seed: int = 0,
                 cache: Path | None = None) -> None:
        self.net, self.count = net, min(count, len(images))
        if cache is not None and cache.is_file():
            with np.load(cache) as saved:
                self.stats = (saved["mu"], saved["sigma"])
            return
        idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:count]
        feats = pool_features(net, images[idx].float().div(127.5).sub(1))
        self.stats = (feats.mean(0), np.cov(feats, rowvar=False))
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.name + ".tmp.npz")
            np.savez(tmp, mu=self.stats[0], sigma=self.stats[1])
            tmp.replace(cache)

    def score(self, samples: torch.Tensor) -> float:
        return fid(self.stats, pool_features(self.net, samples))


def fid_cache(store: ModelStore, dataset: str, size: int, channels: int, count: int) -> Path:
    """Where a catalog dataset's real statistics are kept (a caller's images have none)."""
    return store.root / "scorers" / f"fid_{dataset}_{size}px_{channels}ch_{count}.npz"


def scorer(sample: Callable[[int], torch.Tensor], *, fid_ref: FidReference | None, fid_samples: int,
           digits: DigitClassifier | None) -> Callable[..., Mapping[str, float]]:
    """The per-epoch score of a training run: `sample(n)` draws n images from the generator."""
    def score(*_args) -> Mapping[str, float]:
        values: dict[str, float] = {}
        if digits is not None:
            values |= digit_score(digits, sample(1000))
        if fid_ref is not None and fid_samples:
            values |= {"fid": fid_ref.score(sample(fid_samples)), "fid_samples": float(fid_samples)}
        return values

    return score
