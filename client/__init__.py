"""dreamrender's client SDK (no torch needed).

    from dreamrender.client import DreamClient
    with DreamClient("localhost:50051") as client:
        png = client.dream("cat.jpg", steps=5, timeout=600)
"""
from ._sdk import (AsyncDreamClient, DreamClient, DreamError, dream_request, final_result, image_message,
                   style_request)

__all__ = ["DreamClient", "AsyncDreamClient", "DreamError", "dream_request", "style_request", "image_message",
           "final_result"]
