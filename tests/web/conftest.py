"""dreamweb's fixtures: a real dreamd (tiny networks, two tokens) on 127.0.0.1:0, the real
`dreamweb` command in front of it, and headless Chromium from Debian's packages driven by
Playwright."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import start_server

TOKENS = ("alice-token-0123456789abcdef", "bob-token-0123456789abcdef00")


class Gateway:
    """`dreamweb` in a subprocess; `.url` is its base URL, `.log` what it printed."""

    def __init__(self, dreamd: str, log: Path, *flags: str) -> None:
        self.log_path = log
        self._out = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "dreamrender.web", "--dreamd", dreamd,
                                      "--listen", "127.0.0.1:0", *flags], stdout=self._out, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 30
        while not (m := re.search(r"listening on (http://\S+/)", log.read_text())):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dreamweb did not start:\n{log.read_text()}")
            time.sleep(0.05)
        self.url = m.group(1)
        self._wait_ready()

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "healthz", timeout=5).status_code in (200, 503):
                    return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._out.close()


@pytest.fixture(scope="session")
def token_dreamd(models_dir, tmp_path_factory):
    """A dreamd whose calls need one of TOKENS; each token sees only its own jobs."""
    path = tmp_path_factory.mktemp("web-tokens") / "tokens"
    path.write_text("\n".join(TOKENS) + "\n")
    srv = start_server(models_dir, auth_token_file=str(path))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def gateway(token_dreamd, tmp_path_factory):
    gw = Gateway(token_dreamd.target, tmp_path_factory.mktemp("web") / "dreamweb.log", "--max-upload-mb", "2")
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium, headless, under Playwright (no browser download: the system one)."""
    from .._prereqs import require

    exe = require("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def alices_generator(token_dreamd) -> str:
    """A tiny DCGAN trained under Alice's token (generators belong to their token)."""
    from dreamrender.client import DreamClient

    with DreamClient(token_dreamd.target, token=TOKENS[0]) as c:
        list(c.train_generator("webdigits", dataset="mnist", timeout=120, steps=4, batch=8, latent=8, width=32,
                               fid_samples=0, progress_every=2))
    return "webdigits"
