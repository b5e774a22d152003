"""dreamrender's client SDK (no torch needed).

    from dreamrender.client import DreamClient
    with DreamClient("localhost:50051") as client:
        png = client.dream("cat.jpg", steps=5, timeout=600)

Modules: `_sdk` (the sync and asyncio clients, request builders), `cli` (`dreamctl`) and
`scoring` (`LocalScorer`: loss terms with onnxruntime and numpy only, on an exported model file,
`dreamctl models export vgg16 -o vgg16.onnx`; the server's evaluator uses it too).
"""
from .scoring import Scorer as LocalScorer
from .scoring import StyleTerms

from ._gan import sample_request, train_request
from ._sdk import (AsyncDreamClient, DreamClient, DreamError, dream_request, evaluate_request, final_result,
                   image_message, style_request)

__all__ = ["DreamClient", "AsyncDreamClient", "DreamError", "LocalScorer", "StyleTerms", "dream_request",
           "style_request", "evaluate_request", "image_message", "final_result", "train_request", "sample_request"]
