"""ONNX export of feature networks, cached in the model store.

The export takes an RGB [0, 1] image (N, 3, H, W) with dynamic H and W, applies the model's own
input normalisation, and returns the named layers' activations (outputs named by layer). The
network is cut right after the deepest requested layer. Files are cached under
`<store>/onnx/`, keyed by model, layers, weights hash and opset; each export is checked against
torch before it is kept.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from dreamrender.settings import STYLE_CONTENT_LAYERS, STYLE_STYLE_LAYERS

from ._catalog import get_model, get_spec
from ._features import FeatureNet
from ._store import ModelStore, sha256_file, user_cache_dir

__all__ = ["export_onnx", "export_key", "verify_export", "onnx_export", "DEFAULT_OPSET", "COMMON_EXPORTS"]

DEFAULT_OPSET = 17
# What `dreamctl models pull --onnx` pre-builds: the style layers (which the evaluator needs).
COMMON_EXPORTS = tuple(sorted(STYLE_CONTENT_LAYERS + STYLE_STYLE_LAYERS))

# torch.onnx.export (the TorchScript exporter) keeps its state in module globals and asserts that
# no other export is under way: two threads exporting at once (the evaluator's scorer export and a
# generator's, or a test's fixture beside a server's thread) fail with "GLOBALS.in_onnx_export
# must be False". Every export in this process goes through one lock.
_EXPORT_LOCK = threading.Lock()


def onnx_export(module: nn.Module, args: tuple, f: Any, **kwargs: Any) -> None:
    """torch.onnx.export(module, args, f, dynamo=False, **kwargs), one export at a time per process,
    with the TorchScript exporter's deprecation warnings silenced (it is the exporter we need:
    see export_onnx)."""
    with _EXPORT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module, args, f, dynamo=False, **kwargs)


class _Export(nn.Module):
    def __init__(self, net: FeatureNet, layers: Sequence[str]) -> None:
        super().__init__()
        self.net, self.names = net, list(layers)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.net(image, self.names)
        return tuple(feats[n] for n in self.names)


def _weights_id(name: str, store: ModelStore) -> str:
    spec = get_spec(name)
    if spec.random_seed is not None:
        return f"random{spec.random_seed}"
    found = store.find(name, spec.sources)
    if found is None:
        return "missing"
    path = found[0]
    # Hashing 500 MB on every call would be slow: remember the digest next to the file, keyed by mtime/size.
    stamp = path.with_name(path.name + ".sha256.json")
    st = path.stat()
    if stamp.is_file():
        data = json.loads(stamp.read_text())
        if data.get("mtime") == st.st_mtime and data.get("size") == st.st_size:
            return data["sha256"][:16]
    digest = sha256_file(path)
    try:
        stamp.write_text(json.dumps({"mtime": st.st_mtime, "size": st.st_size, "sha256": digest}))
    except OSError:  # a read-only store (shared volume): just hash again next time
        pass
    return digest[:16]


def _export_dir(store: ModelStore) -> Path:
    """`<store>/onnx`, or a per-user cache when the store is read-only (replicas sharing a volume)."""
    d = store.root / "onnx"
    try:
        d.mkdir(parents=True, exist_ok=True)
        if os.access(d, os.W_OK):
            return d
    except OSError:
        pass
    cache = user_cache_dir() / "onnx"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


def export_key(name: str, layers: Sequence[str], store: ModelStore, opset: int = DEFAULT_OPSET) -> str:
    layer_id = hashlib.sha256(",".join(layers).encode()).hexdigest()[:10]
    return f"{name}-{_weights_id(name, store)}-{layer_id}-op{opset}"


def verify_export(path: Path, net: FeatureNet, layers: Sequence[str], images: Sequence[torch.Tensor],
                  rtol: float = 1e-3) -> float:
    """Largest relative difference between onnxruntime and torch over `images`; raises if > rtol."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for img in images:
        with torch.no_grad():
            ref = net(img, layers)
        outs = sess.run(list(layers), {"image": img.numpy().astype(np.float32)})
        for name, out in zip(layers, outs):
            r = ref[name].numpy()
            worst = max(worst, float(np.abs(out - r).max() / (np.abs(r).max() + 1e-12)))
    if worst > rtol:
        raise RuntimeError(f"ONNX export of {net.name} differs from torch by {worst:.2e} (> {rtol})")
    return worst


def export_onnx(name: str, layers: Sequence[str], *, store: ModelStore | None = None, opset: int = DEFAULT_OPSET,
                check_images: Sequence[torch.Tensor] = ()) -> Path:
    """The cached ONNX export of `name` cut after the deepest of `layers`; built and verified if absent."""
    store = store or ModelStore()
    layers = list(dict.fromkeys(layers))
    unknown = [layer for layer in layers if layer not in get_spec(name).layer_names]
    if unknown:
        raise ValueError(f"{name} has no layers {unknown}")
    key = export_key(name, layers, store, opset)
    shared = store.root / "onnx" / f"{key}.onnx"
    if shared.is_file():  # pre-built (dreamctl models pull --onnx), possibly on a read-only volume
        return shared
    path = _export_dir(store) / f"{key}.onnx"
    if path.is_file():  # cached: no network built (a second VGG16 was 200 MB beside a running render)
        return path
    net = get_model(name, store=store)
    side = max(net.min_side * 2, 64)
    example = torch.rand(1, 3, side, side + 16, generator=torch.Generator().manual_seed(0))
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # The TorchScript exporter, not torch.export: FeatureNet cuts the forward pass by raising
        # from a hook, which tracing records as the ops that ran and torch.export cannot follow.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the normalisation constants are constant
            onnx_export(_Export(net, layers).eval(), (example,), str(tmp), opset_version=opset,
                        input_names=["image"], output_names=layers,
                        dynamic_axes={"image": {0: "n", 2: "height", 3: "width"},
                                      **{n: {0: "n", 2: f"{n}_h", 3: f"{n}_w"} for n in layers}})
        _stamp(tmp, name, layers, net.min_side, export_key(name, layers, store, opset))
        # Checked at another size than the traced one (dynamic axes), and on any images given.
        other = torch.rand(1, 3, side + 40, side, generator=torch.Generator().manual_seed(1))
        verify_export(tmp, net, layers, [example, other, *check_images])
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _stamp(path: Path, name: str, layers: Sequence[str], min_side: int, key: str) -> None:
    import onnx

    model = onnx.load(str(path))
    for k, v in {"dreamrender.model": name, "dreamrender.layers": ",".join(layers),
                 "dreamrender.min_side": str(min_side), "dreamrender.key": key}.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = k, v
    onnx.save(model, str(path))
