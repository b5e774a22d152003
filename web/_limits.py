"""Upload limits, enforced on the bytes as they arrive, before anything reaches dreamd."""
from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

__all__ = ["UploadLimit", "UploadTooLarge", "too_large_body"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class UploadTooLarge(Exception):
    """Raised into the handler reading a body that grew past the limit (a body sent without a
    Content-Length, or one that lied about it)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"upload: larger than this gateway's limit of {limit / (1 << 20):.1f} MiB")


class UploadLimit:
    """ASGI middleware: a body whose Content-Length is over `limit` gets 413 before it is read; one
    that turns out larger as it streams raises UploadTooLarge in the reader, which answers 413."""

    def __init__(self, app: Callable[..., Awaitable[None]], limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            await too_large(send, UploadTooLarge(self.limit))
            return
        seen = 0

        async def limited() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise UploadTooLarge(self.limit)
            return message

        await self.app(scope, limited, send)


def too_large_body(err: UploadTooLarge) -> dict[str, Any]:
    """The 413's JSON, in the shape of every other error the page reads, whichever way the limit
    was found (from the Content-Length here, or as the body streamed, in the form's reader)."""
    return {"code": "RESOURCE_EXHAUSTED", "message": str(err),
            "violations": [{"field": "upload", "description": str(err)}]}


async def too_large(send: Send, err: UploadTooLarge) -> None:
    body = json.dumps(too_large_body(err)).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
