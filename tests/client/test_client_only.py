"""The client installs and scores images without torch (a fresh venv; marker `slow`)."""
from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from dreamrender.models import ModelStore
from dreamrender.models.export import export_onnx

from ..conftest import DATA

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_client_alone_evaluates_without_torch(tmp_path, models_dir):
    model = export_onnx("tiny", ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"],
                        store=ModelStore(models_dir))
    # The wheel `pip install ROOT` would build, built here without an isolated build environment, and
    # installed by this venv's pip into a new venv without pip of its own (ensurepip alone took 4 s).
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    built = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    wheel = next((tmp_path / "dist").glob("dreamrender-*.whl"))
    installed = subprocess.run([*pip, "--python", str(py), "install", "--no-compile", str(wheel)],
                               capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stderr[-2000:]
    probe = ("import importlib.util, sys; import dreamrender.client as c; "
             "assert importlib.util.find_spec('torch') is None, 'torch was installed'; "
             "assert 'torch' not in sys.modules; print(c.LocalScorer.__name__)")
    r = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(env_dir / "bin" / "dreamctl"), "evaluate", "--local", str(model), "--content",
                        str(DATA / "chelsea_small.png"), "--style", str(DATA / "starry_small.png"),
                        str(DATA / "chelsea_small.png"), str(DATA / "scream_small.png"), "--json"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    import json

    rows = json.loads(r.stdout)
    assert rows[0]["content"] == 0 and rows[1]["content"] > 0 and len(rows) == 2
