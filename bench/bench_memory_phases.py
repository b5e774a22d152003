"""Where a style render's memory goes (#17): peak RSS by phase, in one process set up as dreamd is.

    python bench/bench_memory_phases.py [--size 512] [--optimizer lbfgs]

Phases, in order: model load, targets, one forward+backward, the optimiser's state (a render long
enough to fill L-BFGS's history), checkpoint encoding (the PNG result and a checkpoint copy), the
evaluator's onnxruntime session, its scoring of one checkpoint, and glibc's kept heap (what
release_memory hands back after the job). For each: the peak RSS reached during the phase (the
kernel's high-water mark, reset before it) and the RSS after it, in MiB.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "server" / "assets" / "chelsea.png"
STYLE = ROOT / "server" / "assets" / "starry_night.jpg"


def _status() -> tuple[float, float]:
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                values[key] = int(value.split()[0]) / 1024
    return values["VmHWM"], values["VmRSS"]


def phase(name: str, fn: Callable[[], object], *, trim: bool = True) -> object:
    """Run one phase; before it, glibc hands back what earlier phases freed (so that each phase
    shows what it needs itself, not what it reused)."""
    if trim:
        from dreamrender.server.memory import release_memory

        release_memory()
    _, before = _status()
    with open("/proc/self/clear_refs", "w") as f:  # reset the high-water mark to the current RSS
        f.write("5")
    started = time.perf_counter()
    out = fn()
    peak, after = _status()
    print(f"{name:34s} peak {peak:6.0f} (+{peak - before:5.0f})  after {after:6.0f} (+{after - before:5.0f})"
          f"  {time.perf_counter() - started:6.1f} s", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--optimizer", default="lbfgs", choices=("lbfgs", "adam"))
    a = p.parse_args()

    import numpy as np
    import onnxruntime  # noqa: F401  (dreamd has it loaded: part of the idle figure)
    import torch
    from PIL import Image

    from dreamrender.models import ModelStore, get_model
    from dreamrender.server.codec import encode_image
    from dreamrender.server.engine import render_style
    from dreamrender.server.engine.imaging import resize_long_side, to_tensor, to_uint8
    from dreamrender.server.engine.sizing import lbfgs_pairs
    from dreamrender.server.engine.style import _Objective, _targets
    from dreamrender.server.evaluator import Evaluator, style_terms
    from dreamrender.server.memory import keep_heap, release_memory
    from dreamrender.settings import StyleImageSettings, StyleSettings

    keep_heap()
    print(f"{a.size} px {a.optimizer}; idle (imports, glibc set up as dreamd): RSS {_status()[1]:.0f} MiB")
    cpu = torch.device("cpu")
    content = to_tensor(Image.open(CONTENT).convert("RGB"))
    style = to_tensor(Image.open(STYLE).convert("RGB"))
    net = phase("model load (vgg16)", lambda: get_model("vgg16"))
    s = StyleSettings(model="vgg16", size=a.size, scales=1, optimizer=a.optimizer, styles=(StyleImageSettings(),))
    targets = phase("targets (content maps, style Grams)", lambda: _targets(net, s, content, [style], a.size, cpu))
    x = resize_long_side(content, a.size).clone().requires_grad_(True)
    objective = _Objective(net, s, targets, cpu, "auto")
    phase("one forward+backward", lambda: objective.loss_and_grad(x))
    pairs = lbfgs_pairs(s, x.shape[-2] * x.shape[-1])
    iters = pairs + 2 if a.optimizer == "lbfgs" else 5
    run = StyleSettings(model="vgg16", size=a.size, scales=1, iterations=iters, optimizer=a.optimizer,
                        styles=(StyleImageSettings(),))
    out = phase(f"render, {iters} iterations ({pairs} pairs)", lambda: render_style(net, content, [style], settings=run))
    kept = _status()[1]
    checkpoint = out.numpy().copy()
    phase("checkpoint encoding (PNG + copy)", lambda: (encode_image(to_uint8(out), "png"), checkpoint.copy()))
    evaluator = Evaluator(ModelStore(None), threads=1)
    terms = style_terms(s)
    layers = list(terms.content_layers) + list(terms.style_layers)
    scorer = phase("evaluator session (onnxruntime)", lambda: evaluator.scorer("vgg16", layers))
    hw = tuple(checkpoint.shape[-2:])
    content_np, style_np = resize_long_side(content, a.size).numpy(), style.numpy()
    phase("evaluator scoring (targets + 1 checkpoint)", lambda: scorer.candidate_terms(
        checkpoint, scorer.style_targets(content_np, [style_np], hw, terms=terms)))
    del x, objective, targets, out, checkpoint
    release_memory()
    print(f"glibc's kept heap: the render left RSS at {kept:.0f} MiB; release_memory brings the process to "
          f"{_status()[1]:.0f} MiB")
    evaluator.close()
    np.zeros(1)


if __name__ == "__main__":
    main()
