"""The model catalog and weight store.

    from dreamrender.models import get_model, list_specs, ModelStore, pull
    net = get_model("vgg16", device="cpu")          # a FeatureNet
    feats = net(image, ["relu4_3"])                  # {"relu4_3": tensor}

Weights live in the store at $DREAMRENDER_MODELS (default ~/.cache/dreamrender/models),
verified by SHA-256; `pull(name, ModelStore())` (or `dreamctl models pull NAME`) fills it.

Modules: `_catalog` (the registry and its entries), `_nets` (architectures with torchvision keys),
`_features` (FeatureNet: named layers, early stop), `_store` (the verified weight store),
`_convert` (weight-file readers), `export` (ONNX exports of the feature nets, cached in the store),
`_dcgan` (the DCGAN networks), `generators` (trained and pretrained generators in the store, as ONNX).
"""
from ._catalog import (FEED_FORWARD_MODELS, ModelSpec, get_model, get_spec, is_available, list_specs, pull, register,
                       weights_path)
from ._dcgan import DCGANDiscriminator, DCGANGenerator, DigitClassifier, init_dcgan
from ._features import FeatureNet, LayerSpec, Normalization
from ._store import ModelStore, WeightSource, WeightsError, default_store_dir, sha256_file
from .export import COMMON_EXPORTS, export_onnx, onnx_export
from .generators import SHARED, GeneratorInfo, GeneratorStore, check_generator_name

__all__ = [
    "ModelSpec", "register", "get_spec", "list_specs", "get_model", "pull", "is_available", "weights_path",
    "FEED_FORWARD_MODELS",
    "FeatureNet", "LayerSpec", "Normalization",
    "ModelStore", "WeightSource", "WeightsError", "default_store_dir", "sha256_file",
    "export_onnx", "onnx_export", "COMMON_EXPORTS",
    "DCGANGenerator", "DCGANDiscriminator", "DigitClassifier", "init_dcgan", "GeneratorInfo", "GeneratorStore", "check_generator_name",
    "SHARED",
]
