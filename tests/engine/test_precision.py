"""bf16 precision: the choice `auto` makes, and the bf16 path on the tiny network against fp32."""
from __future__ import annotations

import logging

import pytest
import torch
from PIL import Image

from dreamrender.models import get_model
from dreamrender.server.engine import Progress, Result, native_bf16, render_dream, render_style, resolve_precision
from dreamrender.server.engine import runtime
from dreamrender.server.engine.imaging import to_tensor
from dreamrender.settings import DreamSettings, DreamTerm, PreviewSettings, StyleSettings

from ..conftest import DATA

CPU = torch.device("cpu")


def load(name: str) -> torch.Tensor:
    return to_tensor(Image.open(DATA / name).convert("RGB"))


@pytest.fixture(scope="module")
def net():
    return get_model("tiny")


@pytest.mark.parametrize("flags,expected", [
    ({}, "fp32"),  # torch cannot say: fp32
    ({"avx512_f": True, "avx512_bf16": False, "amx_bf16": False}, "fp32"),  # AVX-512 alone emulates bf16
    ({"avx512_f": True, "avx512_bf16": True}, "bf16"),
    ({"amx_bf16": True}, "bf16"),
])
def test_auto_follows_the_cpu_capability(monkeypatch, flags, expected):
    monkeypatch.setattr(runtime, "_cpu_flags", lambda: flags)
    monkeypatch.setattr(runtime, "_isa_capped_below_avx512", lambda: False)
    assert native_bf16(CPU) == (expected == "bf16")
    assert resolve_precision("auto", CPU) == expected
    assert resolve_precision("fp32", CPU) == "fp32"


@pytest.mark.parametrize("aten,onednn,capped", [
    ("AVX512", None, False), ("AVX512", "AVX512_CORE_AMX", False), ("AVX512", "ALL", False),
    ("AVX2", None, True),  # ATEN_CPU_CAPABILITY=avx2: torch's kernels stop at AVX2
    ("AVX512", "AVX2", True),  # ONEDNN_MAX_CPU_ISA=AVX2: oneDNN's convolutions do
])
def test_auto_is_fp32_when_the_kernels_are_held_under_avx512(monkeypatch, aten, onednn, capped):
    monkeypatch.setattr(runtime, "_cpu_flags", lambda: {"avx512_bf16": True})
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: aten)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if onednn is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", onednn)
    assert resolve_precision("auto", CPU) == ("fp32" if capped else "bf16")


@pytest.mark.parametrize("supported", [True, False])
def test_auto_on_cuda_follows_torch(monkeypatch, supported):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
    assert resolve_precision("auto", torch.device("cuda")) == ("bf16" if supported else "fp32")


def test_explicit_bf16_without_native_support_runs_and_says_so(monkeypatch, caplog, net):
    monkeypatch.setattr(runtime, "_cpu_flags", lambda: {})
    with caplog.at_level(logging.WARNING, logger="dreamrender.engine"):
        assert resolve_precision("bf16", CPU) == "bf16"
        events: list = []
        render_dream(net, load("chelsea_small.png"), settings=DreamSettings(
            model="tiny", terms=(DreamTerm("relu3_1"),), octaves=1, steps=2, precision="bf16"), on_event=events.append)
    assert "without native bf16" in caplog.text
    assert events[-1].stats.precision == "bf16"


def test_autocast_covers_the_network_only(net):
    x = load("chelsea_small.png").requires_grad_(True)
    with runtime.autocast_for(CPU, "bf16"):
        feats = net(x, ["relu2_1"])
    assert feats["relu2_1"].dtype == torch.bfloat16
    with runtime.autocast_for(CPU, "fp32"):
        assert net(x, ["relu2_1"])["relu2_1"].dtype == torch.float32


def _style(net, optimizer: str, precision: str) -> tuple[list[float], Result]:
    events: list = []
    s = StyleSettings(model="tiny", size=64, scales=1, iterations=30, style_weight=1e-2, optimizer=optimizer,
                      precision=precision, preview=PreviewSettings(every=0))
    render_style(net, load("chelsea_small.png"), [load("starry_small.png")], settings=s, on_event=events.append)
    progress = [e for e in events if isinstance(e, Progress)]
    assert {e.precision for e in progress} == {precision}
    return [e.values["total"] for e in progress], events[-1]


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_bf16_style_loss_falls_and_tracks_fp32(net, optimizer):
    fp32, fp32_result = _style(net, optimizer, "fp32")
    bf16, bf16_result = _style(net, optimizer, "bf16")
    assert bf16_result.stats.precision == "bf16" and fp32_result.stats.precision == "fp32"
    assert bf16 != fp32  # the bf16 path really ran in bf16
    assert bf16[-1] < 0.05 * bf16[0]  # the loss falls by more than 20x in 30 iterations
    # Within 2% of fp32's starting loss (L-BFGS takes both close to zero, where ratios mean little)
    # and, for Adam, within 5% of fp32's final loss.
    assert abs(bf16[-1] - fp32[-1]) < 0.02 * fp32[0]
    if optimizer == "adam":
        assert abs(bf16[-1] - fp32[-1]) < 0.05 * fp32[-1]


def test_bf16_dream_tracks_fp32(net):
    def dream(precision: str) -> tuple[torch.Tensor, list[float]]:
        events: list = []
        s = DreamSettings(model="tiny", terms=(DreamTerm("relu4_2"),), octaves=2, steps=5, precision=precision)
        out = render_dream(net, load("chelsea_small.png"), settings=s, on_event=events.append)
        return out, [e.values["score"] for e in events if isinstance(e, Progress)]

    a, a_scores = dream("fp32")
    b, b_scores = dream("bf16")
    assert b_scores[-1] > 1.5 * b_scores[0]  # the dream amplifies its layer
    assert abs(b_scores[-1] - a_scores[-1]) < 0.05 * a_scores[-1]
    diff = (a - b).abs()
    assert 0 < float(diff.mean()) < 0.01  # same seed, same picture up to rounding: mean |diff| < 2.6/255

