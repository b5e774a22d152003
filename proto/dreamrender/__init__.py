"""dreamrender: a gRPC service that renders DeepDream and neural style transfer images.

This root package holds the contract only: `dreamrender.v1` (the generated protobuf/gRPC stubs),
`settings` (one dataclass per render kind, holding every default), `errors` (domain errors) and
`wire` (settings <-> request fields). The rest: `dreamrender.client` (SDK, `dreamctl` and the
torch-free scorer), `dreamrender.server` (`engine/` and the service, `dreamd`) and
`dreamrender.models` (the model catalog, weight store and ONNX exports).
"""
from .errors import InvalidArgumentError

__version__ = "0.1.0"
__all__ = ["InvalidArgumentError", "__version__"]
