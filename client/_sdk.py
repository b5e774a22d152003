"""The Python SDK: sync and asyncio clients over the generated stub."""
from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Iterator, Sequence

import grpc

from dreamrender import wire
from dreamrender.settings import MAX_MESSAGE_MB, DreamSettings, DreamTerm, PreviewSettings, StyleSettings
from dreamrender.v1 import dreamrender_pb2 as pb
from dreamrender.v1 import dreamrender_pb2_grpc as pb_grpc

from ._errors import DreamError
from ._gan import AsyncGanCalls, GanCalls
from ._messages import (ImageInput, Reassembler, event_of, final_result, final_result_async, image_message,
                        result_format_number)
from ._jobs import AsyncJobCalls, JobCalls
from ._masks import masks_from_colors

__all__ = ["DreamClient", "AsyncDreamClient", "DreamError", "ImageInput", "Metadata",
           "dream_request", "style_request", "evaluate_request", "image_message", "final_result"]

Metadata = Sequence[tuple[str, str]]


def _preview(preview: dict[str, Any] | None) -> dict[str, Any]:
    if not preview:
        return {}
    msg = pb.PreviewOptions()
    wire.fill_request(msg, PreviewSettings, preview, "preview.")
    return {"preview": msg}


def dream_request(image: ImageInput | None = None, *, model: str = "", layer: str | None = None,
                  channels: Iterable[int] = (), terms: Sequence[tuple[str, Sequence[int], float] | DreamTerm] = (),
                  noise: tuple[int, int] | None = None, preview: dict[str, Any] | None = None,
                  result_format: str | None = None, detach: bool = False, request_id: str = "",
                  guide: ImageInput | None = None, mask: ImageInput | None = None,
                  **settings: Any) -> pb.RenderDreamRequest:
    """Build a RenderDreamRequest. `settings` are DreamSettings field names (octaves, steps,
    zoom_frames, ...); anything left out takes the server's default. `terms` are (layer, channels,
    weight) or DreamTerm (which can ask for the `strongest` K channels). `guide`: an image whose
    features the dream grows toward. `mask`: an image of the start's aspect whose grey levels say
    where to dream (white: fully, black: not at all; `mask_invert=True` reverses it). `result_format`: png or jpeg for a still (default png), webp
    or gif for a zoom animation (default webp). `detach`: the job goes on when the caller leaves;
    `request_id`: an idempotency key (a retry re-attaches to the same job)."""
    req = pb.RenderDreamRequest(model=model, result_format=result_format_number(result_format), detach=detach,
                                request_id=request_id, **_preview(preview))
    if guide is not None:
        req.guide.CopyFrom(image_message(guide))
    if mask is not None:
        req.mask.CopyFrom(image_message(mask))
    if noise is not None:
        req.noise.width, req.noise.height = noise
    elif image is not None:
        req.image.CopyFrom(image_message(image))
    if layer:
        req.terms.add(layer=layer, channels=list(channels))
    for term in terms:
        if isinstance(term, DreamTerm):
            item = req.terms.add(layer=term.layer, channels=list(term.channels), weight=term.weight)
            if term.strongest:
                item.strongest = term.strongest
        else:
            lyr, chans, weight = term
            req.terms.add(layer=lyr, channels=list(chans), weight=weight)
    wire.fill_request(req, DreamSettings, settings)
    return req


def _add_styles(req: Any, styles: Sequence[ImageInput], weights: Sequence[float], scales: Sequence[float],
                content_layers: Sequence[str], style_layers: Sequence[str]) -> None:
    """The style images (with weight/scale where given) and layer lists shared by style and evaluate requests."""
    for i, s in enumerate(styles):
        item = req.styles.add(image=image_message(s))
        if i < len(weights):
            item.weight = weights[i]
        if i < len(scales):
            item.scale = scales[i]
    for name in content_layers:
        req.content_layers.add(layer=name)
    for name in style_layers:
        req.style_layers.add(layer=name)


def style_request(content: ImageInput, styles: Sequence[ImageInput], *, model: str = "",
                  style_weights: Sequence[float] = (), style_scales: Sequence[float] = (),
                  content_layers: Sequence[str] = (), style_layers: Sequence[str] = (),
                  init_image: ImageInput | None = None, preview: dict[str, Any] | None = None,
                  presets: Sequence[int | tuple[int, float]] = (), result_format: str = "png",
                  detach: bool = False, request_id: str = "", masks: Sequence[ImageInput | None] = (),
                  source_masks: Sequence[ImageInput | None] = (), mask_colors: ImageInput | None = None,
                  label_colors: Sequence[str] = (), **settings: Any) -> pb.RenderStyleRequest:
    """Build a RenderStyleRequest; `settings` are StyleSettings field names; `detach` and
    `request_id` as for dream_request.

    `presets` are indices of the 26-style feed-forward network, or (index, weight) pairs; they
    imply `method="feed_forward"` and take the place of style images.

    `masks`: one per style (or preset), in order, or None for one that covers everything: an image
    of the content's aspect whose grey levels say where that style goes; where no mask reaches, the
    photo stays. `source_masks`: one per style image, the part of it that defines the style (Gatys
    only). `mask_colors`: a label image with one flat colour per style instead of `masks`, taken in
    order of first appearance or as `label_colors` lists them ('#rrggbb' or 'r,g,b').
    """
    req = pb.RenderStyleRequest(model=model, content=image_message(content), detach=detach, request_id=request_id,
                                result_format=result_format_number(result_format), **_preview(preview))
    _add_styles(req, styles, style_weights, style_scales, content_layers, style_layers)
    for p in presets:
        index, weight = (p, 1.0) if isinstance(p, int) else p
        req.presets.add(index=index, weight=weight)
    _add_masks(req, masks, source_masks, mask_colors, label_colors)
    if init_image is not None:
        req.init_image.CopyFrom(image_message(init_image))
        settings.setdefault("init", "image")
    wire.fill_request(req, StyleSettings, settings)
    return req


def _add_masks(req: pb.RenderStyleRequest, masks: Sequence[ImageInput | None], sources: Sequence[ImageInput | None],
               labels: ImageInput | None, colors: Sequence[str]) -> None:
    """Each mask onto its style (or preset) and each source mask onto its style image."""
    regions = req.styles or req.presets
    if labels is not None:
        if masks:
            raise ValueError("mask_colors: give masks or mask_colors, not both")
        masks = masks_from_colors(image_message(labels).data, len(regions), colors)
    for field, given, items in (("masks", masks, regions), ("source_masks", sources, req.styles)):
        if len(given) > len(items):
            kind = "presets" if field == "masks" and not req.styles else "styles"
            raise ValueError(f"{field}: {len(given)} masks for {len(items)} {kind}")
        for item, mask in zip(items, given):
            if mask is not None:
                getattr(item, "mask" if field == "masks" else "source_mask").CopyFrom(image_message(mask))


def evaluate_request(content: ImageInput, styles: Sequence[ImageInput], candidates: Sequence[ImageInput], *,
                     model: str = "", style_weights: Sequence[float] = (), style_scales: Sequence[float] = (),
                     content_layers: Sequence[str] = (), style_layers: Sequence[str] = (),
                     content_weight: float | None = None, style_weight: float | None = None,
                     tv_weight: float | None = None) -> pb.EvaluateRequest:
    """Build an EvaluateRequest (term weights left out take the server's defaults)."""
    req = pb.EvaluateRequest(model=model, content=image_message(content),
                             candidates=[image_message(c) for c in candidates])
    _add_styles(req, styles, style_weights, style_scales, content_layers, style_layers)
    wire.fill_request(req, StyleSettings, {"content_weight": content_weight, "style_weight": style_weight,
                                            "tv_weight": tv_weight})
    return req


def _read(value: str | Path | bytes | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


# Spread calls over every address a target resolves to, and retry UNAVAILABLE (a replica
# draining or gone) on another one. Renders are safe to retry: UNAVAILABLE before any response
# means no job was accepted, and gRPC never retries a stream once a response has arrived.
# With several replicas, RESOURCE_EXHAUSTED (a full queue, before any response) is retried too:
# round_robin sends the next attempt to the next replica, so a full one is routed around. gRPC
# allows at most 5 attempts, and the caller's deadline bounds them all.
def service_config(*, several_replicas: bool) -> str:
    """The channel's service config: round-robin and the retry policy (see above)."""
    codes = ["UNAVAILABLE", "RESOURCE_EXHAUSTED"] if several_replicas else ["UNAVAILABLE"]
    return json.dumps({
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [{
            "name": [{"service": "dreamrender.v1.DreamRenderService"}, {"service": "grpc.health.v1.Health"}],
            "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.1s", "maxBackoff": "2s",
                            "backoffMultiplier": 2, "retryableStatusCodes": codes},
        }],
    })


def _several_replicas(target: str) -> bool:
    """A target that can name more than one replica: a list of addresses, or a DNS name (a
    headless Service resolves to every pod)."""
    return target.startswith(("ipv4:", "ipv6:")) and "," in target or target.startswith("dns:")


def channel_target(target: str | Sequence[str]) -> str:
    """A gRPC target from "host:port", "dns:///name:port", or several "ip:port" (a list or commas)."""
    targets = [t.strip() for t in (target.split(",") if isinstance(target, str) else target) if t.strip()]
    if len(targets) == 1:
        return targets[0]
    hosts = [t.rsplit(":", 1)[0].strip("[]") for t in targets]
    try:
        versions = {ipaddress.ip_address(h).version for h in hosts}
    except ValueError:
        raise ValueError("several targets must be IP:PORT; for host names use one dns:///NAME:PORT "
                         "(a headless Service resolves to every replica)") from None
    if len(versions) != 1:
        raise ValueError("several targets must all be IPv4 or all IPv6")
    scheme = "ipv4" if versions == {4} else "ipv6"
    return f"{scheme}:" + ",".join(targets)


class _Common:
    """Connection settings shared by the sync and asyncio clients.

    `target`: "host:port", "dns:///name:port" (every address it resolves to), or several
    "ip:port" (a list, or joined by commas); calls are spread round-robin over them.
    TLS: `tls_ca` (PEM path or bytes) trusts the server's CA (omit it to use the system roots with
    `tls=True`); `tls_cert`/`tls_key` present a client certificate (mTLS); `tls_server_name`
    overrides the name checked against the certificate. `token` is sent as `authorization: Bearer`.
    """

    def __init__(self, target: str | Sequence[str], *, options: Sequence[tuple[str, Any]] = (),
                 credentials: grpc.ChannelCredentials | None = None, metadata: Metadata = (),
                 max_message_bytes: int = MAX_MESSAGE_MB << 20, token: str | None = None, tls: bool = False,
                 tls_ca: str | Path | bytes | None = None, tls_cert: str | Path | bytes | None = None,
                 tls_key: str | Path | bytes | None = None, tls_server_name: str | None = None) -> None:
        self.target = channel_target(target)
        self.metadata = tuple(metadata) + ((("authorization", f"Bearer {token}"),) if token else ())
        self._options = [("grpc.max_receive_message_length", max_message_bytes),
                         ("grpc.max_send_message_length", max_message_bytes),
                         ("grpc.service_config", service_config(several_replicas=_several_replicas(self.target))), ("grpc.enable_retries", 1), *options]
        if tls_server_name:
            self._options.append(("grpc.ssl_target_name_override", tls_server_name))
        if credentials is None and (tls or tls_ca or tls_cert):
            credentials = grpc.ssl_channel_credentials(root_certificates=_read(tls_ca), private_key=_read(tls_key),
                                                       certificate_chain=_read(tls_cert))
        self._credentials = credentials

    def _md(self, metadata: Metadata | None) -> tuple[tuple[str, str], ...]:
        return self.metadata + tuple(metadata or ())

    def _render(self, method: Any, req: Any, timeout: float | None, metadata: Metadata | None, reattach: bool) -> Any:
        """A render's event stream (an iterator, or an async one for the asyncio client: `_stream`
        and `_reattaching` are each client's own), re-attaching after UNAVAILABLE when asked."""
        def start(left: float | None) -> Any:
            return self._stream(method(req, timeout=left, metadata=self._md(metadata)))  # type: ignore[attr-defined]

        if reattach and not req.request_id:
            raise ValueError("reattach needs a request_id (the key the server finds the job by)")
        return self._reattaching(start, timeout) if reattach else start(timeout)  # type: ignore[attr-defined]


class DreamClient(_Common, JobCalls, GanCalls):
    """Blocking client. Use as a context manager; every call takes `timeout` (s) and `metadata`.

        with DreamClient("localhost:50051") as c:
            for event in c.render_dream("cat.png", steps=5):
                ...
    """

    def __enter__(self) -> "DreamClient":
        if self._credentials is not None:
            self._channel = grpc.secure_channel(self.target, self._credentials, options=self._options)
        else:
            self._channel = grpc.insecure_channel(self.target, options=self._options)
        self._stub = pb_grpc.DreamRenderServiceStub(self._channel)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "_channel", None) is not None:
            self._channel.close()
            self._channel = None

    def _stream(self, call: Any) -> Iterator[Any]:
        joiner = Reassembler()
        try:
            for response in call:
                ev = joiner.feed(event_of(response))
                if ev is not None:
                    yield ev
        except grpc.RpcError as err:
            raise DreamError.from_rpc_error(err) from None
        finally:
            call.cancel()  # no-op when finished; stops the server's job when the caller breaks off

    def _call(self, method: Any, request: Any, timeout: float | None, metadata: Metadata | None) -> Any:
        try:
            return method(request, timeout=timeout, metadata=self._md(metadata))
        except grpc.RpcError as err:
            raise DreamError.from_rpc_error(err) from None

    def render_dream(self, image: ImageInput | None = None, *, timeout: float | None = None,
                     metadata: Metadata | None = None, reattach: bool = False, **kwargs: Any) -> Iterator[Any]:
        """Stream a dream's events: pb.Accepted, pb.Queued, pb.Progress, pb.Frame, pb.Result.
        `reattach` (with a `request_id`): a stream broken by UNAVAILABLE calls again, and the
        server answers with the same job, once it is back."""
        return self._render(self._stub.RenderDream, dream_request(image, **kwargs), timeout, metadata, reattach)

    def dream(self, image: ImageInput | None = None, **kwargs: Any) -> bytes:
        """Render a dream and return the final image's encoded bytes."""
        return final_result(self.render_dream(image, **kwargs)).image.data

    def render_style(self, content: ImageInput, styles: Sequence[ImageInput], *, timeout: float | None = None,
                     metadata: Metadata | None = None, reattach: bool = False, **kwargs: Any) -> Iterator[Any]:
        """Stream a style transfer's events (`reattach` as for render_dream)."""
        return self._render(self._stub.RenderStyle, style_request(content, styles, **kwargs), timeout, metadata,
                            reattach)

    def style(self, content: ImageInput, styles: Sequence[ImageInput], **kwargs: Any) -> bytes:
        """Render a style transfer and return the final image's encoded bytes."""
        return final_result(self.render_style(content, styles, **kwargs)).image.data

    def evaluate(self, content: ImageInput, styles: Sequence[ImageInput], candidates: Sequence[ImageInput], *,
                 timeout: float | None = 300.0, metadata: Metadata | None = None, **kwargs: Any) -> list[dict[str, float]]:
        """The style loss terms of each candidate, in order: [{"content", "style", "style/<layer>", "tv", "total"}]."""
        req = evaluate_request(content, styles, candidates, **kwargs)
        try:
            resp = self._stub.Evaluate(req, timeout=timeout, metadata=self._md(metadata))
        except grpc.RpcError as err:
            raise DreamError.from_rpc_error(err) from None
        return [dict(c.values) for c in resp.candidates]

    def catalog(self, *, timeout: float | None = 30.0, metadata: Metadata | None = None) -> pb.ListModelsResponse:
        """The whole ListModels answer: the models, the server's device and whether it has native bf16."""
        try:
            return self._stub.ListModels(pb.ListModelsRequest(), timeout=timeout, metadata=self._md(metadata))
        except grpc.RpcError as err:
            raise DreamError.from_rpc_error(err) from None

    def list_models(self, *, timeout: float | None = 30.0, metadata: Metadata | None = None) -> list[pb.ModelInfo]:
        return list(self.catalog(timeout=timeout, metadata=metadata).models)

    def health(self, service: str = "", *, timeout: float | None = 10.0, metadata: Metadata | None = None) -> str:
        """The health service's status name for `service` ("SERVING", "NOT_SERVING", ...)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout,
                              metadata=self._md(metadata))
        except grpc.RpcError as err:
            raise DreamError.from_rpc_error(err) from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)


class AsyncDreamClient(_Common, AsyncJobCalls, AsyncGanCalls):
    """asyncio client: `async with AsyncDreamClient(target) as c: async for ev in c.render_dream(...)`."""

    async def __aenter__(self) -> "AsyncDreamClient":
        if self._credentials is not None:
            self._channel = grpc.aio.secure_channel(self.target, self._credentials, options=self._options)
        else:
            self._channel = grpc.aio.insecure_channel(self.target, options=self._options)
        self._stub = pb_grpc.DreamRenderServiceStub(self._channel)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._channel.close()

    async def _stream(self, call: Any) -> AsyncIterator[Any]:
        joiner = Reassembler()
        try:
            async for response in call:
                ev = joiner.feed(event_of(response))
                if ev is not None:
                    yield ev
        except grpc.RpcError as err:
            raise DreamError.from_rpc_error(err) from None
        finally:
            call.cancel()

    async def _call(self, method: Any, request: Any, timeout: float | None, metadata: Metadata | None) -> Any:
        try:
            return await method(request, timeout=timeout, metadata=self._md(metadata))
        except grpc.RpcError as err:
            raise DreamError.from_rpc_error(err) from None

    def render_dream(self, image: ImageInput | None = None, *, timeout: float | None = None,
                     metadata: Metadata | None = None, reattach: bool = False, **kwargs: Any) -> AsyncIterator[Any]:
        return self._render(self._stub.RenderDream, dream_request(image, **kwargs), timeout, metadata, reattach)

    def render_style(self, content: ImageInput, styles: Sequence[ImageInput], *, timeout: float | None = None,
                     metadata: Metadata | None = None, reattach: bool = False, **kwargs: Any) -> AsyncIterator[Any]:
        return self._render(self._stub.RenderStyle, style_request(content, styles, **kwargs), timeout, metadata,
                            reattach)

    async def dream(self, image: ImageInput | None = None, **kwargs: Any) -> bytes:
        return (await final_result_async(self.render_dream(image, **kwargs))).image.data

    async def evaluate(self, content: ImageInput, styles: Sequence[ImageInput], candidates: Sequence[ImageInput], *,
                       timeout: float | None = 300.0, metadata: Metadata | None = None,
                       **kwargs: Any) -> list[dict[str, float]]:
        req = evaluate_request(content, styles, candidates, **kwargs)
        try:
            resp = await self._stub.Evaluate(req, timeout=timeout, metadata=self._md(metadata))
        except grpc.RpcError as err:
            raise DreamError.from_rpc_error(err) from None
        return [dict(c.values) for c in resp.candidates]

    async def catalog(self, *, timeout: float | None = 30.0,
                      metadata: Metadata | None = None) -> pb.ListModelsResponse:
        """The whole ListModels answer: the models, the server's device and whether it has native bf16."""
        try:
            return await self._stub.ListModels(pb.ListModelsRequest(), timeout=timeout, metadata=self._md(metadata))
        except grpc.RpcError as err:
            raise DreamError.from_rpc_error(err) from None

    async def list_models(self, *, timeout: float | None = 30.0, metadata: Metadata | None = None) -> list[pb.ModelInfo]:
        return list((await self.catalog(timeout=timeout, metadata=metadata)).models)

    async def health(self, service: str = "", *, timeout: float | None = 10.0, metadata: Metadata | None = None) -> str:
        """The health service's status name for `service` ("SERVING", "NOT_SERVING", ...)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        stub = health_pb2_grpc.HealthStub(self._channel)
        try:
            resp = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout,
                                    metadata=self._md(metadata))
        except grpc.RpcError as err:
            raise DreamError.from_rpc_error(err) from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)

