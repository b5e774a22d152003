"""Request and response helpers the SDK's modules share: image messages, result formats, streams."""
from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterable, Iterable, Union

import grpc

from dreamrender import wire
from dreamrender.v1 import dreamrender_pb2 as pb

from ._errors import DreamError

__all__ = ["ImageInput", "image_message", "result_format_number", "event_of", "Reassembler", "final_result",
           "final_result_async"]

ImageInput = Union[str, Path, bytes, "pb.Image"]
_MEDIA = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def image_message(image: ImageInput) -> pb.Image:
    """An Image message from a path, raw bytes, or an Image message."""
    if isinstance(image, pb.Image):
        return image
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    media = next((m for magic, m in _MEDIA.items() if data.startswith(magic)), "")
    return pb.Image(data=data, media_type=media)


def result_format_number(fmt: str | None) -> int:
    """The wire value (None: the server's default for the render: png, or webp for an animation)."""
    if fmt is None:
        return pb.IMAGE_FORMAT_UNSPECIFIED
    number = wire.enum_number(pb.ImageFormat.DESCRIPTOR, fmt)
    if number is None:
        raise ValueError(f"result_format must be one of {', '.join(wire.enum_names(pb.ImageFormat.DESCRIPTOR))}, "
                         f"not {fmt!r}")
    return number


def event_of(response: Any) -> Any:
    return getattr(response, response.WhichOneof("event"))


class Reassembler:
    """Joins ResultChunk messages into the Result that follows them."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def feed(self, ev: Any) -> Any | None:
        if isinstance(ev, pb.ResultChunk):
            self.parts.append(ev.data)
            return None
        if isinstance(ev, pb.Result) and self.parts:
            ev.image.data = b"".join(self.parts)
            self.parts = []
        return ev


def final_result(events: Iterable[Any]) -> pb.Result:
    """The Result message at the end of an event stream."""
    result = None
    for ev in events:
        if isinstance(ev, pb.Result):
            result = ev
    if result is None:
        raise DreamError(grpc.StatusCode.INTERNAL, "stream ended without a result")
    return result


async def final_result_async(events: AsyncIterable[Any]) -> pb.Result:
    """The Result message at the end of an asyncio event stream."""
    result = None
    async for ev in events:
        if isinstance(ev, pb.Result):
            result = ev
    if result is None:
        raise DreamError(grpc.StatusCode.INTERNAL, "stream ended without a result")
    return result
