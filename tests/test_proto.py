"""The contract: committed stubs match proto/, and buf's STANDARD lint passes."""
from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from ._prereqs import require

PROTO = Path(__file__).resolve().parent.parent / "proto"


def test_generated_stubs_are_fresh(tmp_path):
    spec = importlib.util.spec_from_file_location("gen", PROTO / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    written = gen.generate(tmp_path)
    assert written, "protoc wrote nothing"
    for path in written:
        committed = PROTO / path.relative_to(tmp_path)
        assert committed.read_text() == path.read_text(), f"{committed} is stale: run python proto/generate.py"


def test_buf_lint_standard():
    buf = require("buf")
    r = subprocess.run([buf, "lint"], cwd=PROTO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_package_and_service_names():
    from dreamrender.v1 import dreamrender_pb2 as pb

    service = pb.DESCRIPTOR.services_by_name["DreamRenderService"]
    assert pb.DESCRIPTOR.package == "dreamrender.v1"
    assert {m.name for m in service.methods} >= {"RenderDream", "RenderStyle", "ListModels"}
    assert service.methods_by_name["RenderDream"].server_streaming
