"""The one place engine events become protobuf response messages."""
from __future__ import annotations

from typing import Any

from dreamrender.v1 import dreamrender_pb2 as pb

from .codec import encode_image
from .engine.events import Accepted, Event, Frame, Progress, Queued, RenderStats, Result, Scores

__all__ = ["to_response", "to_responses", "result_responses", "RESULT_CHUNK_BYTES"]


def _stats(s: RenderStats) -> pb.RenderStats:
    return pb.RenderStats(width=s.width, height=s.height, steps=s.steps, elapsed_seconds=s.elapsed_seconds,
                          model=s.model, device=s.device, values=dict(s.values), seed=s.seed,
                          precision=s.precision)


# A chunk's image bytes: 1 MiB less room for the message around them (the field tags, offset and
# total size), so a chunk fits a 1 MiB message limit (was 1 MiB of data: 13 bytes over it).
RESULT_CHUNK_BYTES = (1 << 20) - 1024


def to_responses(event: Event, response_type: type, *, frame_format: str = "jpeg", result_format: str = "png",
                 chunk_bytes: int = RESULT_CHUNK_BYTES) -> list[Any]:
    """The response messages of an event: one, or for a large result its chunks and then the result."""
    if isinstance(event, Result):
        data, media = event.encoded or encode_image(event.image, result_format)
        return result_responses(pb.Result(image=pb.Image(data=data, media_type=media), stats=_stats(event.stats)),
                                response_type, chunk_bytes=chunk_bytes)
    return [to_response(event, response_type, frame_format=frame_format)]


def result_responses(result: pb.Result, response_type: type, *, chunk_bytes: int = RESULT_CHUNK_BYTES) -> list[Any]:
    """A result as response messages: itself, or when its image is larger than `chunk_bytes`, the
    image in `result_chunk` messages and then the result with its image bytes empty."""
    data = result.image.data
    if len(data) <= chunk_bytes:
        return [response_type(result=result)]
    chunks = [response_type(result_chunk=pb.ResultChunk(data=data[i:i + chunk_bytes], offset=i, total_size=len(data)))
              for i in range(0, len(data), chunk_bytes)]
    bare = pb.Result()
    bare.CopyFrom(result)
    bare.image.data = b""
    return chunks + [response_type(result=bare)]


def _result(response_type: type, data: bytes, media: str, stats: RenderStats) -> Any:
    """The Result message (its image bytes empty when they went out as chunks before it)."""
    return response_type(result=pb.Result(image=pb.Image(data=data, media_type=media), stats=_stats(stats)))


def to_response(event: Event, response_type: type, *, frame_format: str = "jpeg", result_format: str = "png") -> Any:
    """Wrap an engine event in a RenderDreamResponse / RenderStyleResponse (one message)."""
    if isinstance(event, Accepted):
        return response_type(accepted=pb.Accepted(job_id=event.job_id, queue_position=event.queue_position,
                                                  server_id=event.server_id))
    if isinstance(event, Queued):
        return response_type(queued=pb.Queued(queue_position=event.queue_position, eta_seconds=event.eta_seconds,
                                                lane=event.lane))
    if isinstance(event, Progress):
        return response_type(progress=pb.Progress(
            stage=event.stage, stage_index=event.stage_index, stage_count=event.stage_count, step=event.step,
            total_steps=event.total_steps, values=dict(event.values), elapsed_seconds=event.elapsed_seconds,
            eta_seconds=event.eta_seconds, precision=event.precision,
            terms=[pb.DreamTerm(layer=t.layer, channels=list(t.channels), weight=t.weight,
                                **({"strongest": t.strongest} if t.strongest else {})) for t in event.terms]))
    if isinstance(event, Frame):
        data, media = encode_image(event.image, frame_format)
        return response_type(frame=pb.Frame(image=pb.Image(data=data, media_type=media), step=event.step,
                                            score=event.score, stage=event.stage, stage_index=event.stage_index))
    if isinstance(event, Scores):
        return response_type(scores=pb.CheckpointScores(step=event.step, stage_index=event.stage_index,
                                                        values=dict(event.values), evaluator=event.evaluator))
    if isinstance(event, Result):
        return _result(response_type, *(event.encoded or encode_image(event.image, result_format)), event.stats)
    raise TypeError(f"not an event: {event!r}")
