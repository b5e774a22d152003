"""dreamweb's settings: one dataclass, from which its flags derive (`--max-upload-mb` for
max_upload_mb), so that a default lives in one place."""
from __future__ import annotations

import argparse
from pathlib import Path
from dataclasses import dataclass, field, fields
from typing import Any, Sequence

__all__ = ["WebConfig", "add_flags", "config_from_args", "read_token", "split_listen"]


def _flag(default: Any, help: str, *, metavar: str | None = None, many: bool = False) -> Any:
    return field(default=default, metadata={"help": help, "metavar": metavar, "many": many})


@dataclass(frozen=True)
class WebConfig:
    """Everything `dreamweb` can be told; each field is one flag."""

    dreamd: str = _flag("127.0.0.1:50051", "dreamd's HOST:PORT (or dns:///name:port, or several ip:port joined by "
                                           "commas), reached through the dreamrender SDK", metavar="ADDR")
    listen: str = _flag("127.0.0.1:8080", "HOST:PORT to serve the page and its API on (port 0: any free)",
                        metavar="ADDR")
    token_file: str = _flag("", "a file whose first line is the bearer token sent to dreamd for callers that bring "
                                "none (a caller's own `Authorization: Bearer` header always wins)", metavar="FILE")
    tls_ca: str = _flag("", "speak TLS to dreamd, trusting this CA (PEM)", metavar="FILE")
    tls_cert: str = _flag("", "client certificate (PEM) for dreamd's mutual TLS", metavar="FILE")
    tls_key: str = _flag("", "the client certificate's key (PEM)", metavar="FILE")
    tls_server_name: str = _flag("", "the name dreamd's certificate is checked against (default: the host of --dreamd)",
                                 metavar="NAME")
    cors_origin: tuple[str, ...] = _flag((), "an origin allowed to call the API from another site (repeat for "
                                             "several); none: CORS stays closed", metavar="ORIGIN", many=True)
    max_upload_mb: float = _flag(32.0, "largest upload in MiB (a whole form); larger ones get 413 before any byte "
                                       "reaches dreamd")
    max_files: int = _flag(8, "most files one form may carry (a photo, its styles, a guide or a mask)")
    render_timeout: float = _flag(3600.0, "seconds a render call may take: the deadline the gateway gives dreamd")
    keepalive: float = _flag(15.0, "seconds between comments on a quiet event stream, so proxies keep it open")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * (1 << 20))


def add_flags(p: argparse.ArgumentParser) -> None:
    """One flag per WebConfig field, its help ending with the default."""
    for f in fields(WebConfig):
        meta = f.metadata
        flag = "--" + f.name.replace("_", "-")
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "metavar": meta["metavar"]}
        if meta["many"]:
            kw["action"] = "append"
        elif not isinstance(f.default, str):
            kw["type"] = type(f.default)
        shown = f" (default: {f.default})" if f.default not in ("", ()) else ""
        p.add_argument(flag, help=meta["help"] + shown, **kw)


def config_from_args(args: argparse.Namespace) -> WebConfig:
    values = {f.name: getattr(args, f.name) for f in fields(WebConfig) if hasattr(args, f.name)}
    if "cors_origin" in values:
        values["cors_origin"] = tuple(values["cors_origin"])
    return WebConfig(**values)


def read_token(path: str) -> str:
    """The first line of a token file (dreamd's own format: one token per line)."""
    lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise ValueError(f"{path}: no token in it")
    return lines[0]


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--listen must be HOST:PORT, not {listen!r}")
    return host.strip("[]"), int(port)

