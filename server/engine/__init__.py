"""The render engines: tensors in, keyword-only settings, events out through a callback.

Nothing here knows of gRPC, protobuf, encoded images or files (tests/engine checks the imports).

- `dream`: DeepDream (octaves, tiles with a random roll, multi-term objective, noise start).
- `style`: Gatys style transfer (L-BFGS/Adam, several styles, scales, colour preservation).
- `feedforward`: feed-forward stylization on onnxruntime (arbitrary styles, the 26 presets).
- `events`: one frozen dataclass per event kind the engines emit.
- `imaging`: tensor image helpers (resizing, previews); `runtime`: cancellation, the progress
  clock, device, precision and autocast choice.
"""
from .dream import render_dream
from .feedforward import FeedForwardNets, render_feed_forward
from .events import (Accepted, AnimationFrame, Checkpoint, Event, EventSink, Frame, Progress, Queued, RenderStats, Result,
                     Scores)
from .runtime import NonFiniteError, RenderCancelled, ServerShuttingDown, native_bf16, resolve_device, resolve_precision
from .style import render_style

__all__ = ["render_dream", "render_style", "render_feed_forward", "FeedForwardNets", "RenderCancelled", "NonFiniteError", "ServerShuttingDown", "resolve_device",
           "native_bf16", "resolve_precision",
           "Accepted", "Queued", "Progress", "Frame", "Checkpoint", "AnimationFrame", "Scores", "Result", "RenderStats", "Event",
           "EventSink"]
