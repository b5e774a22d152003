"""The SDK's GAN calls (TrainGenerator, RenderSample), mixed into DreamClient and AsyncDreamClient."""
from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator, Iterator, Sequence

from dreamrender import wire
from dreamrender.settings import GanSettings, PreviewSettings, SampleSettings
from dreamrender.v1 import dreamrender_pb2 as pb

from ._messages import final_result, final_result_async, image_message, result_format_number

__all__ = ["GanCalls", "AsyncGanCalls", "train_request", "sample_request"]


def _preview(msg: Any, preview: dict[str, Any] | None) -> None:
    if preview:
        wire.fill_request(msg.preview, PreviewSettings, preview, "preview.")


def train_request(name: str, *, dataset: str = "mnist", images: Sequence[Any] = (), archive: str | Path | bytes | None = None,
                  preview: dict[str, Any] | None = None, detach: bool = False, request_id: str = "",
                  **settings: Any) -> pb.TrainGeneratorRequest:
    """Build a TrainGeneratorRequest. `dataset`: mnist, mnist_full, or images (then `images`, a
    list of paths/bytes/Image messages, or one tar/zip `archive`, path or bytes). `settings` are
    GanSettings field names (size, epochs, batch, conditional, ...)."""
    req = pb.TrainGeneratorRequest(name=name, detach=detach, request_id=request_id)
    wire.fill_request(req, GanSettings, {"dataset": dataset, **settings})
    for im in images:
        req.images.append(image_message(im))
    if archive is not None:
        req.archive = archive if isinstance(archive, bytes) else Path(archive).read_bytes()
    _preview(req, preview)
    return req


def sample_request(generator: str, *, result_format: str | None = None, preview: dict[str, Any] | None = None,
                   detach: bool = False, request_id: str = "", **settings: Any) -> pb.RenderSampleRequest:
    """Build a RenderSampleRequest; `settings` are SampleSettings field names (count, seed, label,
    walk, ...). `result_format`: png or jpeg for a grid, webp or gif for a walk."""
    req = pb.RenderSampleRequest(generator=generator, detach=detach, request_id=request_id,
                                 result_format=result_format_number(result_format))
    wire.fill_request(req, SampleSettings, settings)
    _preview(req, preview)
    return req


class GanCalls:
    """Sync GAN calls; the host class provides _stub and _render."""

    _stub: Any

    def train_generator(self, name: str, *, timeout: float | None = None, metadata: Any = None,
                        reattach: bool = False, **kwargs: Any) -> Iterator[Any]:
        """Stream a training run's events: pb.Accepted, pb.Queued, pb.Progress (d_loss, g_loss, d_x,
        d_g_z, steps_per_second), pb.Frame (the 5x5 grid), pb.CheckpointScores (each epoch's FID and
        digit score), and pb.Result (the last grid; the generator is then registered as `name`)."""
        return self._render(self._stub.TrainGenerator, train_request(name, **kwargs), timeout, metadata,  # type: ignore[attr-defined]
                            reattach)

    def render_sample(self, generator: str, *, timeout: float | None = None, metadata: Any = None,
                      reattach: bool = False, **kwargs: Any) -> Iterator[Any]:
        """Stream a sampling job's events (a walk's frames as pb.Frame), ending with pb.Result."""
        return self._render(self._stub.RenderSample, sample_request(generator, **kwargs), timeout, metadata,  # type: ignore[attr-defined]
                            reattach)

    def sample(self, generator: str, **kwargs: Any) -> bytes:
        """A grid (or a walk's animation) of `generator`, encoded."""
        return final_result(self.render_sample(generator, **kwargs)).image.data


class AsyncGanCalls:
    """asyncio GAN calls; the host class provides _stub and _render."""

    _stub: Any

    def train_generator(self, name: str, *, timeout: float | None = None, metadata: Any = None,
                        reattach: bool = False, **kwargs: Any) -> AsyncIterator[Any]:
        return self._render(self._stub.TrainGenerator, train_request(name, **kwargs), timeout, metadata,  # type: ignore[attr-defined]
                            reattach)

    def render_sample(self, generator: str, *, timeout: float | None = None, metadata: Any = None,
                      reattach: bool = False, **kwargs: Any) -> AsyncIterator[Any]:
        return self._render(self._stub.RenderSample, sample_request(generator, **kwargs), timeout, metadata,  # type: ignore[attr-defined]
                            reattach)

    async def sample(self, generator: str, **kwargs: Any) -> bytes:
        return (await final_result_async(self.render_sample(generator, **kwargs))).image.data
