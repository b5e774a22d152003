"""The error interceptor on its own: how a streaming call that ends under it is counted."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import grpc

from dreamrender.v1 import dreamrender_pb2 as pb
from dreamrender.server._interceptor import ErrorInterceptor


class _Counts:
    """Stands in for the metrics' requests counter: records (rpc, code) per increment."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.requests = self

    def labels(self, rpc: str, code: str) -> "_Counts":
        self.seen.append((rpc, code))
        return self

    def inc(self) -> None:
        pass


class _Context:
    def time_remaining(self) -> None:
        return None


def _streaming(responses: list[pb.RenderDreamResponse]):
    async def handler(request, context):
        for r in responses:
            yield r

    return grpc.unary_stream_rpc_method_handler(handler)


async def _wrapped(counts: _Counts, responses: list[pb.RenderDreamResponse]):
    async def continuation(details):
        return _streaming(responses)

    details = SimpleNamespace(method="/dreamrender.v1.DreamRenderService/RenderDream")
    handler = await ErrorInterceptor(counts).intercept_service(continuation, details)
    return handler.unary_stream(pb.RenderDreamRequest(), _Context())


def _close_after(count: int, responses: list[pb.RenderDreamResponse]) -> list[tuple[str, str]]:
    """Take `count` responses, then close the stream the way grpc does when the caller goes away
    (the generator is closed at its yield, never resumed)."""
    async def go() -> list[tuple[str, str]]:
        counts = _Counts()
        stream = await _wrapped(counts, responses)
        for _ in range(count):
            await stream.__anext__()
        await stream.aclose()
        return counts.seen

    return asyncio.run(go())


PROGRESS = pb.RenderDreamResponse(progress=pb.Progress(step=1))
RESULT = pb.RenderDreamResponse(result=pb.Result(stats=pb.RenderStats(width=1)))


def test_a_caller_that_leaves_as_soon_as_the_result_arrives_is_ok():
    # The race CI once lost: the caller cancels while grpc is still writing the result.
    assert _close_after(2, [PROGRESS, RESULT, PROGRESS]) == [("RenderDream", "OK")]


def test_a_caller_that_leaves_before_the_result_is_cancelled():
    assert _close_after(1, [PROGRESS, RESULT]) == [("RenderDream", "CANCELLED")]
