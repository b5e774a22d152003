"""The one interceptor that maps domain errors to gRPC status codes."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import Any, AsyncIterator

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from dreamrender.errors import InvalidArgumentError, NotFoundError, ResourceLimitError, describe
from dreamrender.models import WeightsError

from .engine.runtime import RenderCancelled, ServerShuttingDown
from .jobs import JobEndedError, JobNotFoundError, StoreFullError, StoreUnavailableError
from .scheduler import QueueFullError

__all__ = ["ErrorInterceptor", "status_for", "ended_as", "CallOutcome", "quiet_lost_client_errors", "ParseGuard",
           "request_cap", "SMALL_REQUEST_BYTES",
           "ServerDeadlineError"]


log = logging.getLogger(__name__)


class _LostClientFilter(logging.Filter):
    """grpc's asyncio server logs an ERROR with a traceback from its core when a response cannot be
    sent because the client is gone (killed mid-stream, or its connection reset): "ExecuteBatchError
    raised in core by servicer method [...]". Nothing is wrong with the server then, and our own
    job log line already says how the call ended; keep that as one WARNING line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if type(exc).__name__ == "ExecuteBatchError" or "ExecuteBatchError" in str(record.msg):
            method = re.search(r"\[(/[^\]]*)\]", record.getMessage())  # "... servicer method [/pkg.Svc/Rpc]"
            method = method.group(1) if method else ""
            record.msg, record.args = "client went away while a response was sent%s (grpc ExecuteBatchError)", (
                f" on {method}" if method else "",)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_lost_client_errors() -> None:
    """Install the filter on grpc's logger (once per process)."""
    logger = logging.getLogger("grpc._cython.cygrpc")
    if not any(isinstance(f, _LostClientFilter) for f in logger.filters):
        logger.addFilter(_LostClientFilter())


def _oom_types() -> tuple[type[BaseException], ...]:
    import torch

    return (MemoryError, torch.OutOfMemoryError)


def _cpu_oom(exc: BaseException) -> bool:
    """torch's CPU allocator reports failure as a plain RuntimeError (OutOfMemoryError is CUDA's)."""
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in str(exc) or "not enough memory" in str(exc))


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str, list[Any]]:
    """(status code, message, google.rpc detail messages) for an exception."""
    if isinstance(exc, InvalidArgumentError):  # a ResourceLimitError too: the same field violation, another code
        code = grpc.StatusCode.RESOURCE_EXHAUSTED if isinstance(exc, ResourceLimitError) else \
            grpc.StatusCode.NOT_FOUND if isinstance(exc, NotFoundError) else grpc.StatusCode.INVALID_ARGUMENT
        violation = error_details_pb2.BadRequest.FieldViolation(field=exc.field, description=str(exc))
        return code, str(exc), [error_details_pb2.BadRequest(field_violations=[violation])]
    if isinstance(exc, QueueFullError):
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(int(round(exc.retry_after, 1) * 1000))  # the message's figure
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), [retry]
    if isinstance(exc, JobNotFoundError):
        return grpc.StatusCode.NOT_FOUND, str(exc), []
    if isinstance(exc, StoreFullError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), []
    if isinstance(exc, StoreUnavailableError):
        return grpc.StatusCode.UNAVAILABLE, str(exc), []
    if isinstance(exc, JobEndedError):
        return getattr(grpc.StatusCode, exc.code, grpc.StatusCode.UNKNOWN), str(exc), []
    if isinstance(exc, WeightsError):
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc), []
    if isinstance(exc, ServerShuttingDown):
        return grpc.StatusCode.UNAVAILABLE, str(exc), []
    if isinstance(exc, RenderCancelled):
        return grpc.StatusCode.CANCELLED, str(exc), []
    if isinstance(exc, ServerDeadlineError):
        return grpc.StatusCode.DEADLINE_EXCEEDED, str(exc), []
    if isinstance(exc, _oom_types()) or _cpu_oom(exc):
        hint = "out of memory: try a smaller size, a smaller tile_size, or the adam optimizer"
        return grpc.StatusCode.RESOURCE_EXHAUSTED, hint, []
    if isinstance(exc, ValueError):  # any other domain error
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc), []
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}", []


def _trailers(code: grpc.StatusCode, message: str, details: list[Any]) -> tuple[tuple[str, bytes], ...]:
    """The google.rpc.Status trailer carrying `details`, built by grpcio-status (as grpc's examples do)."""
    if not details:
        return ()
    packed = []
    for d in details:
        a = any_pb2.Any()
        a.Pack(d)
        packed.append(a)
    st = status_pb2.Status(code=getattr(code_pb2, code.name), message=message, details=packed)
    return tuple(rpc_status.to_status(st).trailing_metadata)


class ServerDeadlineError(TimeoutError):
    """A unary call ran past the server's own deadline (--rpc-deadline): DEADLINE_EXCEEDED."""


class _Unparsable:
    """What the request deserializer returns for bytes it will not parse (the handler raises
    `refuse()`): not a valid message (INVALID_ARGUMENT; grpc's own path logged a traceback and
    answered UNKNOWN), or more bytes than the method takes (RESOURCE_EXHAUSTED, never parsed)."""

    def __init__(self, type_name: str, error: Exception | None, size: int = 0, cap: int = 0) -> None:
        self.type_name, self.error, self.size, self.cap = type_name, error, size, cap

    def refuse(self) -> InvalidArgumentError:
        if self.error is None:
            return ResourceLimitError("request", f"a {self.type_name} of {self.size:,} bytes is more than this "
                                                 "method takes", f"at most {self.cap:,} bytes")
        return InvalidArgumentError("request", f"cannot parse the {self.type_name} ({describe(self.error)})",
                                    f"a serialized {self.type_name} (valid protobuf, strings in UTF-8)")


# The largest request each method takes, checked on its bytes before any parsing (#28 D18: a
# 60 MiB GetJob was parsed, stalling health for up to a second and growing RSS by 780 MB, before
# anything looked at it, a token included). Methods that carry images or training data take up
# to the server's --max-message-mb; the others' requests are ids, names and numbers.
SMALL_REQUEST_BYTES = 64 << 10
_LARGE_REQUESTS = frozenset({"RenderDream", "RenderStyle", "Evaluate", "TrainGenerator"})


def request_cap(method: str, max_message: int) -> int:
    """Bytes a request of `method` ("/package.Service/Method") may have."""
    return max_message if method.rsplit("/", 1)[-1] in _LARGE_REQUESTS else min(max_message, SMALL_REQUEST_BYTES)


def _safe_deserializer(deserializer: Any, method: str, cap: int) -> Any:
    type_name = method.rsplit("/", 1)[-1] + "Request"

    def parse(data: bytes) -> Any:
        if len(data) > cap:
            return _Unparsable(type_name, None, len(data), cap)
        try:
            return deserializer(data)
        except Exception as exc:  # DecodeError, invalid UTF-8 in a string field, ...
            return _Unparsable(type_name, exc)

    return parse


def _parse_guarded(handler: Any, method: str) -> Any:
    """A health (or other library) method whose bytes that do not parse get INVALID_ARGUMENT, quietly:
    grpc's own deserializer answered UNKNOWN and logged a traceback per call, so that anyone
    could flood the log without a token (#28 D6). Over SMALL_REQUEST_BYTES: RESOURCE_EXHAUSTED."""
    parse = _safe_deserializer(handler.request_deserializer, method, SMALL_REQUEST_BYTES)

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        exc = request.refuse()
        await context.abort(status_for(exc)[0], str(exc))

    if handler.unary_unary is not None:
        inner_unary = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, _Unparsable):
                await refuse(request, context)
            return await inner_unary(request, context)

        return handler._replace(unary_unary=unary_unary, request_deserializer=parse)
    if handler.unary_stream is not None:
        inner_stream = handler.unary_stream

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, _Unparsable):
                await refuse(request, context)
            async for response in inner_stream(request, context):
                yield response

        return handler._replace(unary_stream=unary_stream, request_deserializer=parse)
    return handler


class ParseGuard(grpc.aio.ServerInterceptor):
    """Only the unparsable-bytes guard (the --health-listen port, which has no other interceptor)."""

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        return None if handler is None else _parse_guarded(handler, details.method)


class CallOutcome:
    """One streaming call: its deadline (read when it starts: touching a context after its call
    ended can crash grpc's aio layer) and whether its result went out."""

    def __init__(self, context: Any) -> None:
        remaining = context.time_remaining()
        self.deadline = None if remaining is None else time.monotonic() + remaining
        self.delivered = False

    def saw(self, response: Any) -> None:
        """Note a response handed to grpc for the caller (the result marks the call delivered)."""
        self.delivered = self.delivered or response.WhichOneof("event") == "result"


def ended_as(call: "CallOutcome") -> str:
    """The outcome of a call that ended without a status of ours: OK once its result went out (a
    caller may close the stream right after it), DEADLINE_EXCEEDED when its deadline passed, else
    CANCELLED (the caller went away)."""
    if call.delivered:
        return "OK"
    # grpc's deadline timer may fire a few ms before our reading of it says: 100 ms of slack (a
    # caller cancelling that close to its deadline is indistinguishable from one that ran out).
    late = call.deadline is not None and time.monotonic() >= call.deadline - _DEADLINE_SLACK
    return "DEADLINE_EXCEEDED" if late else "CANCELLED"


_DEADLINE_SLACK = 0.1


def _code_name(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Turns exceptions escaping a handler into the right status (with BadRequest details), and
    counts every call's final status in `metrics` (when given)."""

    def __init__(self, metrics: Any = None, max_message_bytes: int = 64 << 20, rpc_deadline: float = 0.0) -> None:
        self.metrics = metrics
        self.max_message_bytes = max_message_bytes  # the image-carrying methods' request cap
        self.rpc_deadline = rpc_deadline  # seconds a unary call may take here (0: no limit)

    async def _within_deadline(self, method: str, call: Any) -> Any:
        """Await `call`, cancelling it once the server's deadline passes (#28: no call waits forever,
        whatever deadline its caller set; a cancelled Evaluate stops between candidates)."""
        if not self.rpc_deadline:
            return await call
        try:
            return await asyncio.wait_for(call, self.rpc_deadline)
        except asyncio.TimeoutError:
            raise ServerDeadlineError(f"{method.rsplit('/', 1)[-1]} ran past this server's deadline of "
                                      f"{self.rpc_deadline:g} s (--rpc-deadline)") from None

    @contextlib.asynccontextmanager
    async def _outcome(self, method: str, context: grpc.aio.ServicerContext,
                       call: "CallOutcome | None" = None) -> AsyncIterator[None]:
        """Around one handler: an exception becomes its status (`status_for`), and the call's final
        code is counted in `metrics` *before* the status goes out, so a client that scrapes /metrics
        right after its call sees it. (Not a done-callback: it can run after the client has its
        status, and grpc aio's context reports neither code nor cancellation there for a
        cancelled call.)"""
        try:
            yield
        except grpc.aio.AbortError:
            self._count(method, _code_name(context))
            raise
        except Exception as exc:
            code, message, details = status_for(exc)
            if code == grpc.StatusCode.INTERNAL:
                log.exception("unexpected error", exc_info=exc)
            self._count(method, code.name)
            await context.abort(code, message, trailing_metadata=_trailers(code, message, details))
        except BaseException:  # asyncio.CancelledError / GeneratorExit: the call ended under the handler
            self._count(method, ended_as(call) if call is not None else "CANCELLED")
            raise
        else:
            self._count(method, "OK")

    def _count(self, method: str, code_name: str) -> None:
        if self.metrics is not None:
            self.metrics.requests.labels(method.rsplit("/", 1)[-1], code_name).inc()

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        if not details.method.startswith("/dreamrender."):
            return _parse_guarded(handler, details.method)  # health and reflection: their other errors are their own
        method = details.method
        parse = _safe_deserializer(handler.request_deserializer, method, request_cap(method, self.max_message_bytes))
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                call = CallOutcome(context)
                async with self._outcome(method, context, call):
                    if isinstance(request, _Unparsable):
                        raise request.refuse()
                    async for response in inner_stream(request, context):
                        # Noted before the yield: a caller that closes its stream as soon as the
                        # result arrives can cancel us while grpc is still finishing that write,
                        # and the generator is then closed at the yield, never resumed.
                        call.saw(response)
                        yield response

            return handler._replace(unary_stream=unary_stream, request_deserializer=parse)
        if handler.unary_unary is not None:
            inner_unary = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with self._outcome(method, context):
                    if isinstance(request, _Unparsable):
                        raise request.refuse()
                    return await self._within_deadline(method, inner_unary(request, context))

            return handler._replace(unary_unary=unary_unary, request_deserializer=parse)
        return handler
