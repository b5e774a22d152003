"""Job events (the SDK's pb.Accepted, Progress, Frame, ...) as Server-Sent Events for the page,
and jobs and errors as JSON: the one place where messages become what the browser reads."""
from __future__ import annotations

import base64
import json
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from dreamrender import wire
from dreamrender.client import DreamError
from dreamrender.v1 import dreamrender_pb2 as pb

__all__ = ["sse", "event_payload", "job_json", "error_json", "http_status"]

_KINDS = {pb.Accepted: "accepted", pb.Queued: "queued", pb.Progress: "progress", pb.Frame: "frame",
          pb.CheckpointScores: "scores", pb.Result: "result"}
# The HTTP status the page gets for each gRPC status; the body always carries the gRPC code's name.
_HTTP = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.OUT_OF_RANGE: 400,
         grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.UNAUTHENTICATED: 401,
         grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
         grpc.StatusCode.ABORTED: 409, grpc.StatusCode.CANCELLED: 409, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
         grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.UNAVAILABLE: 503,
         grpc.StatusCode.DEADLINE_EXCEEDED: 504}


def _dict(msg: Any) -> dict[str, Any]:
    return MessageToDict(msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def _result_url(job_id: str) -> str:
    return f"api/jobs/{job_id}/result"


def _data_url(image: pb.Image) -> str:
    media = image.media_type or "image/jpeg"
    return f"data:{media};base64,{base64.b64encode(image.data).decode()}"


def event_payload(ev: Any, job_id: str) -> tuple[str, dict[str, Any]]:
    """(SSE event name, JSON body) of one job event. A frame carries its image inline (a data URL,
    so that it shows the moment it arrives); a result carries the address of its image instead,
    since a full-size result may be many megabytes."""
    kind = _KINDS.get(type(ev), "other")
    if kind == "frame":
        body = _dict(pb.Frame(step=ev.step, score=ev.score, stage=ev.stage, stage_index=ev.stage_index))
        body["image"] = _data_url(ev.image)
        return kind, body
    if kind == "result":
        return kind, {"stats": _dict(ev.stats), "media_type": ev.image.media_type,
                      "size": len(ev.image.data), "url": _result_url(job_id)}
    return kind, _dict(ev)


def sse(event: str, data: dict[str, Any] | None = None) -> bytes:
    """One Server-Sent Event (a comment when `event` is empty: a keep-alive)."""
    if not event:
        return b": keep-alive\n\n"
    return f"event: {event}\ndata: {json.dumps(data or {}, separators=(',', ':'))}\n\n".encode()


def error_json(err: Exception) -> dict[str, Any]:
    """{"code", "message", "violations": [{"field", "description"}]} of a DreamError or FormError."""
    if isinstance(err, DreamError):
        return {"code": err.code.name, "message": err.details,
                "violations": [{"field": f, "description": d} for f, d in err.violations]}
    field = getattr(err, "field", "")
    return {"code": "INVALID_ARGUMENT", "message": str(err),
            "violations": [{"field": field, "description": str(err)}] if field else []}


def http_status(err: Exception) -> int:
    return _HTTP.get(err.code, 502) if isinstance(err, DreamError) else 400


def job_json(job: pb.Job) -> dict[str, Any]:
    """A job for the page: its state, progress and error, and where its result and frame are."""
    out = {"job_id": job.job_id, "kind": job.kind, "state": wire.enum_name(pb.JobState.DESCRIPTOR, job.state) or "unknown", "done": job.done,
           "create_time": job.create_time, "update_time": job.update_time, "request_id": job.request_id,
           "progress": _dict(job.progress) if job.HasField("progress") else None,
           "error": {"code": job.error.code, "message": job.error.message} if job.HasField("error") else None}
    if job.HasField("frame") and job.frame.image.data:
        out["frame"] = _data_url(job.frame.image)
    if job.state == pb.JOB_STATE_SUCCEEDED:
        out["result_url"] = _result_url(job.job_id)
    return out
