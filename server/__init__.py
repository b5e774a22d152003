"""dreamrender's server: the render engines and `dreamd`.

- `engine/`: the engines (dream, style, events, imaging, run-time helpers). No gRPC in there.
- `requests`: every RPC's request -> validated settings and decoded inputs (limits, model store).
- `servicer`: wires requests to the `scheduler` and engine events to `responses` (the one place
  events become protobuf); `codec` decodes and encodes image bytes; `evaluator` scores checkpoints
  with onnxruntime.
- `app`: `ServerConfig` (dreamd's flags derive from it), `create_server(config)` and `main()`;
  `_interceptor` (errors -> statuses), `_security`, `_metrics` and `memory` support it.
"""
from .app import Server, ServerConfig, create_server, main, serve

__all__ = ["create_server", "Server", "ServerConfig", "serve", "main"]
