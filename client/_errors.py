"""The SDK's one exception type, carrying the call's status."""
from __future__ import annotations

from typing import Sequence

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

__all__ = ["DreamError"]


class DreamError(Exception):
    """A failed call. `code` is the grpc.StatusCode; `violations` lists (field, description)."""

    def __init__(self, code: grpc.StatusCode, details: str, violations: Sequence[tuple[str, str]] = (),
                 retry_after: float | None = None) -> None:
        self.code = code
        self.details = details
        self.violations = list(violations)
        self.retry_after = retry_after
        super().__init__(f"{code.name}: {details}")

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> "DreamError":
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        violations: list[tuple[str, str]] = []
        retry_after = None
        try:
            status = rpc_status.from_call(err)  # type: ignore[arg-type]
        except Exception:  # a malformed detail trailer must not hide the status itself
            status = None
        for detail in status.details if status else ():
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                br = error_details_pb2.BadRequest()
                detail.Unpack(br)
                violations += [(v.field, v.description) for v in br.field_violations]
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                ri = error_details_pb2.RetryInfo()
                detail.Unpack(ri)
                retry_after = ri.retry_delay.ToMilliseconds() / 1000
        return cls(code, err.details() or "", violations, retry_after)
