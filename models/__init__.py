"""The model catalog and weight store.

    from dreamrender.models import get_model, list_specs, ModelStore, pull
    net = get_model("vgg16", device="cpu")          # a FeatureNet
    feats = net(image, ["relu4_3"])                  # {"relu4_3": tensor}

Weights live in the store at $DREAMRENDER_MODELS (default ~/.cache/dreamrender/models),
verified by SHA-256; `pull(name, ModelStore())` (or `dreamctl models pull NAME`) fills it.
"""
from ._catalog import (STYLE_CONTENT_LAYERS, STYLE_STYLE_LAYERS, ModelSpec, get_model, get_spec,
                       is_available, list_specs, pull, register)
from ._features import FeatureNet, LayerSpec, Normalization
from ._store import ModelStore, WeightSource, WeightsError, default_store_dir, sha256_file

__all__ = [
    "ModelSpec", "register", "get_spec", "list_specs", "get_model", "pull", "is_available",
    "FeatureNet", "LayerSpec", "Normalization",
    "ModelStore", "WeightSource", "WeightsError", "default_store_dir", "sha256_file",
    "STYLE_CONTENT_LAYERS", "STYLE_STYLE_LAYERS",
]
