"""Generators in the model store, as ONNX: the ones callers train and the catalog's pretrained ones.

    gens = GeneratorStore(ModelStore())
    info = gens.get("mydigits", owner)          # GeneratorInfo, or WeightsError-free NotFoundError
    session_bytes = gens.onnx_path(info).read_bytes()

Layout: `<store>/generators/<namespace>/<name>/{generator.onnx, info.json}`. A trained generator's
namespace is its owner (the caller's hashed token when dreamd runs with tokens, else "shared"), so
one token never sees, overwrites or even learns of another's generators. The catalog's pretrained
generators (kind "generator") are exported on first use into the "catalog" namespace, keyed by the
SHA-256 of their weights. Each export is checked against torch before it is kept, and written
atomically (a reader never sees half a file).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dreamrender.errors import InvalidArgumentError, NotFoundError

from ._catalog import get_spec, list_specs, weights_path
from ._convert import load_state_dict
from ._store import ModelStore
from .export import onnx_export

__all__ = ["GeneratorInfo", "GeneratorStore", "check_generator_name", "export_generator", "SHARED"]

SHARED = "shared"  # the namespace of generators trained with tokens off
_CATALOG = "catalog"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_OPSET = 17


@dataclass(frozen=True)
class GeneratorInfo:
    """What a caller (and RenderSample) needs to know of a generator."""

    name: str
    latent: int
    channels: int
    size: int
    classes: int = 0  # 0: unconditional
    description: str = ""
    source: str = "trained"  # or "catalog"
    metrics: dict = field(default_factory=dict)  # the training's final scores (FID, digit score)
    created: float = 0.0


def check_generator_name(name: str, field_name: str = "name") -> str:
    """`name` if it is a valid generator name, else InvalidArgumentError naming the rule."""
    if not _NAME.match(name or ""):
        raise InvalidArgumentError(field_name, f"{name!r} is not a valid generator name",
                                   "1-64 letters, digits, '-' or '_', starting with a letter or digit")
    return name


class _OnnxInterface(nn.Module):
    """One export interface for every generator: z (N, latent) [+ one-hot label] -> image in [-1, 1]."""

    def __init__(self, net: nn.Module, classes: int) -> None:
        super().__init__()
        self.net, self.classes = net, classes

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z, label) if self.classes else self.net(z)


def export_generator(net: nn.Module, info: GeneratorInfo, path: Path) -> None:
    """Write `net` (in eval mode) as ONNX to `path`, checked against torch on a batch of 3."""
    net = net.eval()
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(3, info.latent, generator=gen)
    inputs: tuple = (z,)
    names = ["z"]
    if info.classes:
        inputs = (z, torch.eye(info.classes)[torch.arange(3) % info.classes])
        names.append("label")
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        onnx_export(_OnnxInterface(net, info.classes).eval(), inputs, str(tmp),
                    opset_version=_OPSET, input_names=names, output_names=["image"],
                    dynamic_axes={n: {0: "n"} for n in [*names, "image"]})
        expected = net(*inputs).numpy() if info.classes else net(z).numpy()
    import onnxruntime as ort

    got = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"]).run(
        None, {n: t.numpy() for n, t in zip(names, inputs)})[0]
    if not np.allclose(got, expected, atol=1e-4):
        tmp.unlink()
        raise RuntimeError(f"the ONNX export of {info.name} differs from torch by {np.abs(got - expected).max():.2g}")
    os.replace(tmp, path)


class GeneratorStore:
    """The generators under `<store>/generators`."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store
        self.root = store.root / "generators"

    def _dir(self, namespace: str, name: str) -> Path:
        return self.root / namespace / name

    def _staged(self, parent: Path, net: nn.Module, info: GeneratorInfo) -> Path:
        """A hidden folder in `parent` holding the checked export and its info.json, ready to be
        renamed into place (so a reader never sees a generator half written)."""
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{info.name}.", dir=parent))
        export_generator(net, info, tmp / "generator.onnx")
        (tmp / "info.json").write_text(json.dumps(dataclasses.asdict(info), indent=1))
        return tmp

    def save(self, net: nn.Module, info: GeneratorInfo, namespace: str) -> Path:
        """Export `net` and record `info` under `namespace` (replacing a generator of that name)."""
        check_generator_name(info.name)
        final = self._dir(namespace, info.name)
        tmp = self._staged(final.parent, net, info)
        old = final.with_name(f".{info.name}.old")
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        return final

    def _read(self, folder: Path) -> GeneratorInfo | None:
        try:
            data = json.loads((folder / "info.json").read_text())
        except (OSError, ValueError):
            return None
        return GeneratorInfo(**{k: v for k, v in data.items() if k in GeneratorInfo.__dataclass_fields__})

    def trained(self, namespace: str) -> list[GeneratorInfo]:
        """The generators trained in `namespace`, by name."""
        folder = self.root / namespace
        found = [self._read(d) for d in sorted(folder.iterdir()) if not d.name.startswith(".")] \
            if folder.is_dir() else []
        return [g for g in found if g is not None]

    def get(self, name: str, namespace: str, field_name: str = "generator") -> tuple[GeneratorInfo, Path]:
        """(info, ONNX path) of generator `name`: the caller's own, or the catalog's (exported on
        first use). NotFoundError lists what this caller can sample otherwise."""
        spec = next((s for s in list_specs() if s.kind == "generator" and s.name == name), None)
        if spec is not None:
            return self._catalog(name)
        info = self._read(self._dir(namespace, name)) if _NAME.match(name or "") else None
        if info is None:
            names = sorted([g.name for g in self.trained(namespace)]
                           + [s.name for s in list_specs() if s.kind == "generator"])
            raise NotFoundError(field_name, f"no generator {name!r}", names)
        return info, self._dir(namespace, name) / "generator.onnx"

    def _catalog(self, name: str) -> tuple[GeneratorInfo, Path]:
        spec = get_spec(name)
        weights = weights_path(name, self.store)  # WeightsError naming the pull command when absent
        folder = self._dir(_CATALOG, f"{name}-{spec.sources[0].sha256[:12]}")
        info = self._read(folder)
        if info is None:
            net = spec.builder()
            net.load_state_dict(load_state_dict(weights, spec.sources[0].fmt))
            info = GeneratorInfo(name=name, latent=net.latent, channels=net.channels, size=net.size,
                                 classes=net.classes, description=spec.description, source=_CATALOG)
            tmp = self._staged(folder.parent, net, info)
            try:
                os.replace(tmp, folder)
            except OSError:  # another thread exported it meanwhile: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
            info = self._read(folder) or info
        return info, folder / "generator.onnx"
