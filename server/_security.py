"""Token authentication and TLS for dreamd."""
from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path
from typing import Any, Sequence

import grpc

__all__ = ["TokenAuthInterceptor", "load_tokens", "server_credentials", "caller_of", "MIN_TOKEN_LENGTH"]

log = logging.getLogger(__name__)
_OPEN_PREFIXES = ("/grpc.health.v1.Health/",)  # load balancers and kubelets probe without tokens


MIN_TOKEN_LENGTH = 16  # shorter secrets are guessable; `openssl rand -hex 32` gives 64 characters


def load_tokens(path: str | Path) -> list[bytes]:
    """One token per line (several allow rotation without downtime).

    Blank lines and lines starting with `#` are comments. A line shorter than MIN_TOKEN_LENGTH is
    skipped with a warning naming its line number (never its text); a file with no valid token
    raises ValueError, so dreamd refuses to start rather than run open or locked.
    """
    tokens = []
    for number, raw in enumerate(Path(path).read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if len(line) < MIN_TOKEN_LENGTH:
            log.warning("%s line %d: token shorter than %d characters, ignored", path, number, MIN_TOKEN_LENGTH)
            continue
        tokens.append(line.encode())
    if not tokens:
        raise ValueError(f"{path}: no valid token (one per line, at least {MIN_TOKEN_LENGTH} characters; "
                         "lines starting with # are comments)")
    return tokens


def _bearer(metadata: Sequence[tuple[str, Any]] | None) -> str:
    header = next((v for k, v in (metadata or ()) if k == "authorization"), "")
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    return header[len("Bearer "):].strip() if header.startswith("Bearer ") else ""


def caller_of(metadata: Sequence[tuple[str, Any]] | None, peer: str, *, by_token: bool) -> str:
    """Who is asking, for per-caller fairness: with tokens on, the token (as a short hash, so the
    secret never reaches logs); else the peer's address without its port, since each connection
    of one host has another port."""
    if by_token:
        return "token:" + hashlib.sha256(_bearer(metadata).encode()).hexdigest()[:12]
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return rest.rsplit(":", 1)[0]
    return peer


def _authorized(metadata: Sequence[tuple[str, Any]] | None, tokens: Sequence[bytes]) -> bool:
    given = _bearer(metadata).encode()
    if not given:
        return False
    # compare_digest against every token (no early exit) so timing says nothing about which matched
    matches = [hmac.compare_digest(given, t) for t in tokens]
    return any(matches)


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    """Calls without `authorization: Bearer <token>` get UNAUTHENTICATED (health stays open).

    Tokens are never logged; a refused call is logged with its method and peer only.
    """

    def __init__(self, tokens: Sequence[bytes]) -> None:
        self.tokens = list(tokens)

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or details.method.startswith(_OPEN_PREFIXES):
            return handler
        if _authorized(details.invocation_metadata, self.tokens):
            return handler
        log.warning("unauthenticated call to %s refused", details.method)

        # Real async functions of each shape: grpc aio tells sync handlers from async ones by
        # inspecting the function, so a lambda returning a coroutine or generator is run as a
        # sync handler and fails with a TypeError (UNKNOWN) instead of refusing the call.
        async def deny(request: Any, context: grpc.aio.ServicerContext) -> None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")

        async def deny_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
            yield  # pragma: no cover - makes this an async generator

        if handler.unary_unary is not None:
            return handler._replace(unary_unary=deny)
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=deny_stream)
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=deny)
        return handler._replace(stream_stream=deny_stream)


def server_credentials(cert: str, key: str, client_ca: str | None = None) -> grpc.ServerCredentials:
    """TLS with the given certificate chain and key; with `client_ca`, clients must present a
    certificate it signed (mTLS)."""
    chain, private = Path(cert).read_bytes(), Path(key).read_bytes()
    root = Path(client_ca).read_bytes() if client_ca else None
    return grpc.ssl_server_credentials([(private, chain)], root_certificates=root,
                                       require_client_auth=root is not None)
