"""The one place events become protobuf, and requests become settings."""
from __future__ import annotations

import dataclasses
from typing import Any

from dreamrender import _wire
from dreamrender.errors import InvalidArgumentError
from dreamrender.settings import (DreamSettings, DreamTerm, PreviewSettings, StyleImageSettings, StyleLayer,
                                  StyleSettings, validate)
from dreamrender.v1 import dreamrender_pb2 as pb

from ._imaging import encode_image
from .events import Accepted, Event, Frame, Progress, Queued, RenderStats, Result, Scores

__all__ = ["to_response", "to_responses", "dream_settings", "style_settings", "evaluate_settings", "result_format"]


def _stats(s: RenderStats) -> pb.RenderStats:
    return pb.RenderStats(width=s.width, height=s.height, steps=s.steps, elapsed_seconds=s.elapsed_seconds,
                          model=s.model, device=s.device, values=dict(s.values), seed=s.seed)


RESULT_CHUNK_BYTES = 1 << 20


def to_responses(event: Event, response_type: type, *, frame_format: str = "jpeg", result_format: str = "png",
                 chunk_bytes: int = RESULT_CHUNK_BYTES) -> list[Any]:
    """The response messages of an event: one, or for a large result its chunks and then the result."""
    if isinstance(event, Result):
        data, media = encode_image(event.image, result_format)
        if len(data) > chunk_bytes:
            chunks = [response_type(result_chunk=pb.ResultChunk(data=data[i:i + chunk_bytes], offset=i,
                                                                 total_size=len(data)))
                      for i in range(0, len(data), chunk_bytes)]
            return chunks + [_result(response_type, b"", media, event.stats)]
        return [_result(response_type, data, media, event.stats)]
    return [to_response(event, response_type, frame_format=frame_format)]


def _result(response_type: type, data: bytes, media: str, stats: RenderStats) -> Any:
    """The Result message (its image bytes empty when they went out as chunks before it)."""
    return response_type(result=pb.Result(image=pb.Image(data=data, media_type=media), stats=_stats(stats)))


def to_response(event: Event, response_type: type, *, frame_format: str = "jpeg", result_format: str = "png") -> Any:
    """Wrap an engine event in a RenderDreamResponse / RenderStyleResponse (one message)."""
    if isinstance(event, Accepted):
        return response_type(accepted=pb.Accepted(job_id=event.job_id, queue_position=event.queue_position,
                                                  server_id=event.server_id))
    if isinstance(event, Queued):
        return response_type(queued=pb.Queued(queue_position=event.queue_position))
    if isinstance(event, Progress):
        return response_type(progress=pb.Progress(
            stage=event.stage, stage_index=event.stage_index, stage_count=event.stage_count, step=event.step,
            total_steps=event.total_steps, values=dict(event.values), elapsed_seconds=event.elapsed_seconds,
            eta_seconds=event.eta_seconds))
    if isinstance(event, Frame):
        data, media = encode_image(event.image, frame_format)
        return response_type(frame=pb.Frame(image=pb.Image(data=data, media_type=media), step=event.step,
                                            score=event.score, stage=event.stage, stage_index=event.stage_index))
    if isinstance(event, Scores):
        return response_type(scores=pb.CheckpointScores(step=event.step, stage_index=event.stage_index,
                                                        values=dict(event.values), evaluator=event.evaluator))
    if isinstance(event, Result):
        return _result(response_type, *encode_image(event.image, result_format), event.stats)
    raise TypeError(f"not an event: {event!r}")


def _preview(req: Any, default: PreviewSettings) -> PreviewSettings:
    values = _wire.read_request(req.preview, PreviewSettings, "preview.") if req.HasField("preview") else {}
    return dataclasses.replace(default, **values)


def result_format(req: Any) -> str:
    """The result encoding a request asks for ("png" unless it says JPEG)."""
    return "jpeg" if req.result_format == pb.IMAGE_FORMAT_JPEG else "png"


def dream_settings(req: pb.RenderDreamRequest, *, default_model: str) -> DreamSettings:
    """Settings from a request; terms are left empty when the request names none."""
    values = _wire.read_request(req, DreamSettings)
    terms = []
    for i, t in enumerate(req.terms):
        if not t.layer:
            raise InvalidArgumentError(f"terms[{i}].layer", "layer is empty", "a layer name from ListModels")
        weight = t.weight if t.HasField("weight") else 1.0
        terms.append(DreamTerm(t.layer, tuple(t.channels), weight))
    s = DreamSettings(model=req.model or default_model, terms=tuple(terms),
                      preview=_preview(req, DreamSettings().preview), **values)
    validate(s)
    return s


def _layer_weights(items: Any, field: str) -> tuple[StyleLayer, ...]:
    out = []
    for i, item in enumerate(items):
        if not item.layer:
            raise InvalidArgumentError(f"{field}[{i}].layer", "layer is empty", "a layer name from ListModels")
        out.append(StyleLayer(item.layer, item.weight if item.HasField("weight") else 1.0))
    return tuple(out)


def _style_parts(req: Any, default_model: str) -> dict[str, Any]:
    """Model, per-style weights/scales and layer lists: what RenderStyle and Evaluate requests share."""
    default = StyleSettings()
    return dict(
        model=req.model or default_model,
        styles=tuple(StyleImageSettings(s.weight if s.HasField("weight") else 1.0,
                                        s.scale if s.HasField("scale") else 1.0) for s in req.styles),
        content_layers=_layer_weights(req.content_layers, "content_layers") or default.content_layers,
        style_layers=_layer_weights(req.style_layers, "style_layers") or default.style_layers)


def style_settings(req: pb.RenderStyleRequest, *, default_model: str) -> StyleSettings:
    values = _wire.read_request(req, StyleSettings)
    s = StyleSettings(**_style_parts(req, default_model), preview=_preview(req, StyleSettings().preview), **values)
    validate(s)
    return s


def evaluate_settings(req: pb.EvaluateRequest, *, default_model: str) -> StyleSettings:
    """The StyleSettings an Evaluate request implies (only layers, weights and styles matter)."""
    values = {k: v for k, v in _wire.read_request(req, StyleSettings).items()
              if k in ("content_weight", "style_weight", "tv_weight")}
    s = StyleSettings(**_style_parts(req, default_model), **values)
    validate(s)
    return s
