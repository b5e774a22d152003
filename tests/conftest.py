"""Shared fixtures: a real dreamd on 127.0.0.1:0 in a background thread, sample images."""
from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest
import torch

from dreamrender.server import ServerConfig, create_server

DATA = Path(__file__).parent / "data"
torch.set_num_threads(2)


class ServerThread:
    """Runs create_server(config) on its own event loop; `.target` is HOST:PORT."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        if self.error is None:
            self.loop.run_forever()

    async def _start(self) -> None:
        try:
            self.server = create_server(self.config)
            self.port = self.server.port
            await self.server.start()
        except BaseException as exc:  # surfaced to the test
            self.error = exc

    def start(self) -> "ServerThread":
        self.thread.start()
        self.ready.wait(30)
        if self.error:
            raise self.error
        return self

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def scheduler(self):
        return self.server.scheduler

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A model store with the tiny feed-forward and MNIST stand-ins (the tiny feature net needs no file)."""
    from ._standins import write_mnist_standins
    from ._tiny_ff import write_tiny_feed_forward

    root = tmp_path_factory.mktemp("models")
    write_tiny_feed_forward(root)
    write_mnist_standins(root)
    return root


def start_server(models_dir: Path, **overrides) -> ServerThread:
    import tempfile

    cfg = dict(listen="127.0.0.1:0", device="cpu", models_dir=str(models_dir), default_dream_model="tiny",
               default_style_model="tiny", max_side=1024, max_input_pixels=4_000_000,
               data_dir=tempfile.mkdtemp(prefix="dreamrender-jobs-"))  # each server its own job store
    cfg.update(overrides)
    return ServerThread(ServerConfig(**cfg)).start()


@pytest.fixture(scope="session")
def server(models_dir):
    srv = start_server(models_dir)
    yield srv
    srv.stop()


@pytest.fixture
def chelsea_bytes() -> bytes:
    return (DATA / "chelsea_small.png").read_bytes()


@pytest.fixture
def real_store() -> Path:
    """The model store with real weights; tests marked realweights skip without it."""
    root = Path(os.environ.get("DREAMRENDER_MODELS", Path.home() / ".cache/dreamrender/models"))
    return root

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A real redis-server (Debian's package) on 127.0.0.1 and a free port, without persistence."""

    def __init__(self, workdir: Path, *flags: str, port: int | None = None) -> None:
        import subprocess
        import time

        from ._prereqs import require

        exe = require("redis-server")
        self.port = port or free_port()  # the same port again: a restart, empty
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(workdir), *flags],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.stop()


BIN = Path(__import__("sys").executable).parent


class Dreamd:
    """dreamd in its own process on 127.0.0.1 and a free port, with the tiny models by default."""

    def __init__(self, tmp_path: Path, *flags: str, data_dir: Path | None = None, env: dict | None = None,
                 listen: str = "127.0.0.1:0", wait: bool = True) -> None:
        import subprocess

        self.data_dir = data_dir or tmp_path / "data"
        self.env = dict(os.environ, DREAMRENDER_MODELS=str(tmp_path / "models"), **(env or {}))
        self.flags = ["--device", "cpu", "--default-dream-model", "tiny", "--default-style-model", "tiny",
                      "--data-dir", str(self.data_dir), *flags]
        # The log goes to a file: a pipe nobody reads would stall dreamd once it fills.
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.log_path = tmp_path / f"dreamd-{os.getpid()}-{id(self)}.log"
        self.proc = subprocess.Popen([str(BIN / "dreamd"), "--listen", listen, *self.flags],
                                     stdout=subprocess.PIPE, stderr=open(self.log_path, "w"), text=True, env=self.env)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> "Dreamd":
        """Until dreamd says it listens (`wait=False` starts several at once: each takes 1.5 s)."""
        line = self.proc.stdout.readline()
        if not line.startswith("dreamd listening"):
            self.proc.wait(10)
            raise RuntimeError(self.log())
        self.target = line.split()[-1]
        return self

    @classmethod
    def many(cls, starts: "list[tuple[tuple, dict]]") -> "list[Dreamd]":
        """Start one dreamd per (args, kwargs) at once, then wait for each."""
        procs = [cls(*args, **kwargs, wait=False) for args, kwargs in starts]
        return [d.wait_ready() for d in procs]

    def ctl(self, *args: str, timeout: float = 120, env: dict | None = None):
        """Run dreamctl against this server; returns the CompletedProcess."""
        import subprocess

        return subprocess.run([str(BIN / "dreamctl"), "--server", self.target, *args], capture_output=True,
                               text=True, timeout=timeout, env=dict(os.environ, **(env or {})))

    def stop(self, sig: int = 15, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def log(self) -> str:
        return self.log_path.read_text()
