"""dreamctl and dreamd as real processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from ..conftest import DATA

BIN = Path(sys.executable).parent


def dreamctl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "dreamctl"), *args], capture_output=True, text=True, timeout=timeout)


def test_dream_with_frames(server, tmp_path):
    out, frames = tmp_path / "out.png", tmp_path / "frames"
    r = dreamctl("--server", server.target, "dream", str(DATA / "chelsea_small.png"), "-o", str(out),
                 "--frames", str(frames), "--every", "1", "--octaves", "2", "--steps", "2", "--seed", "3",
                 "--tile", "64", "--jitter", "8")
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (96, 64)
    assert len(list(frames.glob("frame_*.jpg"))) == 4
    assert "accepted job" in r.stderr and "step 4/4" in r.stderr  # plain progress lines off a terminal
    assert f"wrote {out}" in r.stdout


def test_style(server, tmp_path):
    out = tmp_path / "s.png"
    r = dreamctl("--server", server.target, "style", str(DATA / "chelsea_small.png"), str(DATA / "starry_small.png"),
                 str(DATA / "scream_small.png"), "--style-weights", "0.7", "0.3", "-o", str(out), "--size", "64",
                 "--scales", "1", "--iterations", "4", "--optimizer", "adam", "--lr", "0.05", "--preserve-colors",
                 "--pooling", "average", "--init", "noise", "--tv-weight", "0.001", "--frames", str(tmp_path / "f"))
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (64, 43)


def test_models_and_health(server):
    r = dreamctl("--server", server.target, "models")
    assert r.returncode == 0 and "vgg16" in r.stdout and "mixed4d_3x3_bottleneck_pre_relu(144)" in r.stdout
    r = dreamctl("--server", server.target, "health")
    assert r.returncode == 0 and r.stdout.strip() == "SERVING"


def test_failures_are_one_line_naming_the_status(server, tmp_path):
    r = dreamctl("--server", server.target, "dream", str(DATA / "chelsea_small.png"), "-o", str(tmp_path / "x.png"),
                 "--layer", "nope")
    assert r.returncode == 1
    assert r.stderr.startswith("dreamctl: INVALID_ARGUMENT [terms[0].layer]") and r.stderr.count("\n") == 1
    r = dreamctl("--server", "127.0.0.1:1", "--timeout", "2", "health")
    assert r.returncode == 1 and r.stderr.startswith("dreamctl: UNAVAILABLE")


def test_models_pull_from_local_file(tmp_path):
    r = dreamctl("models", "pull", "mobilenet_v2", "--from", str(tmp_path / "nothing.pth"),
                 "--models-dir", str(tmp_path / "m"))
    assert r.returncode == 1 and "no such file" in r.stderr
    r = dreamctl("models", "pull", "tiny", "--models-dir", str(tmp_path / "m"))
    assert r.returncode == 0 and "nothing to fetch" in r.stdout


def test_ctrl_c_cancels_and_server_keeps_serving(server, tmp_path):
    proc = subprocess.Popen([str(BIN / "dreamctl"), "--server", server.target, "dream", "--noise", "512x512",
                             "-o", str(tmp_path / "c.png"), "--octaves", "1", "--steps", "1000"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not server.scheduler.active and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "cancelled" in err
    deadline = time.monotonic() + 10
    while server.scheduler.active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.scheduler.active == 0
    assert not (tmp_path / "c.png").exists()
    assert dreamctl("--server", server.target, "health").returncode == 0


def test_dreamd_process_serves_and_exits_cleanly(tmp_path):
    env = dict(os.environ, DREAMRENDER_MODELS=str(tmp_path / "m"))
    proc = subprocess.Popen([str(BIN / "dreamd"), "--listen", "127.0.0.1:0", "--device", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("dreamd listening on 127.0.0.1:"), proc.stderr.read()
        target = line.split()[-1]
        out = tmp_path / "o.png"
        r = dreamctl("--server", target, "dream", "--noise", "64x64", "--model", "tiny", "-o", str(out),
                     "--octaves", "1", "--steps", "2")
        assert r.returncode == 0, r.stderr
        assert Image.open(out).size == (64, 64)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_feed_forward_style_presets_and_painted_init(server, tmp_path):
    photo, starry = str(DATA / "chelsea_small.png"), str(DATA / "starry_small.png")
    out = tmp_path / "ff.png"
    r = dreamctl("--server", server.target, "style", photo, starry, "--method", "feed-forward", "--strength", "0.8",
                 "--size", "80", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (80, 53)
    r = dreamctl("--server", server.target, "style", photo, "--preset", "7", "--preset", "12:0.5", "-o", str(out))
    assert r.returncode == 0, r.stderr and "1 steps" in r.stdout
    frames = tmp_path / "frames"
    r = dreamctl("--server", server.target, "style", photo, starry, "--init", "feed-forward", "--size", "64",
                 "--scales", "1", "--iterations", "2", "--every", "0", "--frames", str(frames), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in frames.iterdir())[0] == "frame_0000_step00000.jpg"
    r = dreamctl("--server", server.target, "style", photo, "--preset", "31", "-o", str(out))
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith("dreamctl: INVALID_ARGUMENT [presets[0].index]")
    r = dreamctl("--server", server.target, "style", photo, "--preset", "x:y", "-o", str(out))
    assert r.returncode == 2 and "N or N:W" in r.stderr


def test_presets_contact_sheet(server, tmp_path):
    sheet = tmp_path / "sheet.png"
    r = dreamctl("-q", "--server", server.target, "presets", str(DATA / "chelsea_small.png"), "-o", str(sheet),
                 "--tile", "48", "--columns", "9")
    assert r.returncode == 0, r.stderr
    assert "26 presets" in r.stdout
    w, h = Image.open(sheet).size
    assert (w, h) == (9 * 48, 3 * (32 + 22))  # the photo and 26 tiles, 9 a row, each with its label


def test_models_lists_the_presets(server):
    r = dreamctl("--server", server.target, "models")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("multistyle26"))
    assert "feed-forward, presets 0-25" in line and "available" in line


def test_dreamd_help_lists_every_server_config_field():
    import dataclasses

    from dreamrender.server import ServerConfig

    r = subprocess.run([str(BIN / "dreamd"), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for f in dataclasses.fields(ServerConfig):
        flag = f"--{'no-' if f.default is True else ''}{f.name.replace('_', '-')}"
        assert flag in r.stdout, flag
    assert "(default: 16)" in r.stdout and "(default: 4096)" in r.stdout  # defaults come from the dataclass


def test_precision_flag_and_models_device_line(server, tmp_path):
    out = tmp_path / "p.png"
    r = dreamctl("--server", server.target, "style", str(DATA / "chelsea_small.png"), str(DATA / "starry_small.png"),
                 "-o", str(out), "--size", "48", "--scales", "1", "--iterations", "3", "--precision", "bf16")
    assert r.returncode == 0, r.stderr
    assert "in bf16" in r.stdout and Image.open(out).size == (48, 32)
    r = dreamctl("--server", server.target, "dream", str(DATA / "chelsea_small.png"), "-o", str(out),
                 "--precision", "fp16")
    assert r.returncode == 2 and "fp32" in r.stderr and "bf16" in r.stderr  # argparse names the choices
    r = dreamctl("--server", server.target, "models")
    assert r.returncode == 0 and r.stdout.startswith("device cpu (")
