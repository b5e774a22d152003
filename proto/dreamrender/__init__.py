"""dreamrender: a gRPC service that renders DeepDream and neural style transfer images.

Subpackages: `dreamrender.v1` (generated protobuf/gRPC stubs), `dreamrender.client` (SDK and
`dreamctl`, no torch needed), `dreamrender.server` (render engines and `dreamd`),
`dreamrender.models` (the model catalog and weight store).
"""
from .errors import InvalidArgumentError

__version__ = "0.1.0"
__all__ = ["InvalidArgumentError", "__version__"]
