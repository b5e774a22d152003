"""dreamrender's server: the render engines and `dreamd`.

The engines (`render_dream`, `render_style`) know nothing of gRPC: tensors in, keyword-only
settings, events out through a callback. `create_server(config)` wires them into a gRPC server.
"""
from ._common import RenderCancelled, resolve_device
from .app import ServerConfig, create_server, main, serve
from .dream import render_dream
from .events import Accepted, Frame, Progress, Queued, RenderStats, Result

__all__ = ["render_dream", "create_server", "ServerConfig", "serve", "main", "RenderCancelled", "resolve_device",
           "Accepted", "Queued", "Progress", "Frame", "Result", "RenderStats"]
