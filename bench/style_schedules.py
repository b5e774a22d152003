"""Where coarse-to-fine style transfer spends its time: the full-size stage from different starts.

    python bench/style_schedules.py [--model vgg16] [--size 512] [--iters 300] [--fine-iters 250]

bench_style.py asks the multi-scale schedule to reach the single-scale run's 300-iteration loss in
half that run's wall time. This script shows what decides it. It runs the single-scale L-BFGS run,
then the full-size L-BFGS stage from several starts made at smaller sizes, and prints, for each,
the cost of making the start, the full-size loss after 50/100/150/200 full-size iterations, and
the wall time (start included) at which it reaches the single-scale run's final loss, if it does.
Same model, layers and term weights throughout; no checkpoints; one process, dreamd's heap settings.
Needs the model's weights in $DREAMRENDER_MODELS (dreamctl models pull vgg16).
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Callable

import torch
import torch.nn.functional as F

from bench_style import _load, _Stop

MARKS = (50, 100, 150, 200)


def _run(net, content, style, settings, init: torch.Tensor | None = None,
         stop_at: float | None = None) -> tuple[torch.Tensor | None, list[tuple[float, float]]]:
    """One render_style scale; the result and (seconds, total loss) per iteration."""
    from dreamrender.server.engine.events import Progress
    from dreamrender.server.engine.style import render_style

    curve: list[tuple[float, float]] = []

    def on_event(e) -> None:
        if isinstance(e, Progress):
            curve.append((time.perf_counter() - start, e.values["total"]))
            if stop_at is not None and e.values["total"] <= stop_at:
                raise _Stop

    s = dataclasses.replace(settings, init="image" if init is not None else "content")
    start = time.perf_counter()
    try:
        return render_style(net, content, [style], settings=s, init_image=init, on_event=on_event), curve
    except _Stop:
        return None, curve


def _bicubic(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=tuple(like.shape[-2:]), mode="bicubic", align_corners=False).clamp(0, 1)


def _bilinear(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    from dreamrender.server.engine.imaging import resize_to

    return resize_to(x, tuple(like.shape[-2:]))


def _starts(net, content, style, base, coarse_iters: int) -> dict[str, Callable[[], torch.Tensor]]:
    """Ways to make a full-size start from smaller sizes (each returns an image at `base.size`)."""
    from dreamrender.server.engine.imaging import resize_long_side
    from dreamrender.settings import StyleLayer

    full = resize_long_side(content, base.size)

    def coarse(sides: list[int], up, iters: int = coarse_iters) -> torch.Tensor:
        x = None
        for side in sides:
            s = dataclasses.replace(base, size=side, iterations=iters)
            x, _ = _run(net, content, style, s, None if x is None else up(x, resize_long_side(content, side)))
        return up(x, full)

    def shallow() -> torch.Tensor:
        # Fine detail only the full size has (it is below the coarse size's resolution): a pass on
        # the three shallow style layers, the network cut at relu3_1 (about 40% of a full iteration).
        x = coarse([base.size // 2], _bicubic)
        s = dataclasses.replace(base, iterations=30, content_weight=0.0, content_layers=(StyleLayer("relu3_1"),),
                                style_layers=tuple(StyleLayer(n) for n in ("relu1_1", "relu2_1", "relu3_1")))
        return _run(net, content, style, s, x)[0]

    half, quarter = base.size // 2, base.size // 4
    few = max(1, coarse_iters * 2 // 5)  # four smaller sizes at about the cost of one
    return {
        f"{half} px, bilinear up (the engine's 2 scales)": lambda: coarse([half], _bilinear),
        f"{half} px, bicubic up": lambda: coarse([half], _bicubic),
        f"{quarter}/{round(half / 2**0.5)}/{half}/{round(half * 2**0.5)} px x {few}, bicubic": lambda: coarse(
            [quarter, round(half / 2**0.5), half, round(half * 2**0.5)], _bicubic, few),
        f"{half} px, bicubic, + 30 shallow-layer iterations": shallow,
    }


def _marks(curve: list[tuple[float, float]]) -> str:
    return " ".join(f"{min(l for _, l in curve[:m]):>9.4g}" if len(curve) >= m else f"{'-':>9}" for m in MARKS)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vgg16")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--iters", type=int, default=300, help="iterations of the single-scale run")
    p.add_argument("--fine-iters", type=int, default=250, help="most full-size iterations from each start")
    p.add_argument("--coarse-iters", type=int, default=100, help="iterations at the smaller size (2/5 of it for each of 4 sizes)")
    p.add_argument("--threads", type=int, default=2)
    ns = p.parse_args()

    from dreamrender.models import get_model
    from dreamrender.server.memory import keep_heap
    from dreamrender.settings import PreviewSettings, StyleSettings

    keep_heap()
    torch.set_num_threads(ns.threads)
    net = get_model(ns.model)
    content, style = _load(ns.size)
    base = StyleSettings(model=ns.model, size=ns.size, scales=1, iterations=ns.iters, optimizer="lbfgs",
                         preview=PreviewSettings(every=0))
    _, single = _run(net, content, style, base)
    target = min(l for _, l in single)
    print(f"model {ns.model}, {ns.size} px, L-BFGS: best full-size loss after N full-size iterations, and when the"
          f" single-scale run's {len(single)}-iteration loss {target:.4g} is reached")
    print(f"{'start':<48} {'start s':>7} {' '.join(f'N={m:<7}' for m in MARKS)}   reached")
    print(f"{'content (the single-scale run)':<48} {0.0:>7.1f} {_marks(single)}   at {single[-1][0]:.1f} s")
    fine = dataclasses.replace(base, iterations=ns.fine_iters)
    for name, make in _starts(net, content, style, base, ns.coarse_iters).items():
        t = time.perf_counter()
        x = make()
        made = time.perf_counter() - t
        _, curve = _run(net, content, style, fine, x, stop_at=target)
        end = (f"at {made + curve[-1][0]:.1f} s ({made + curve[-1][0]:.1f} / {single[-1][0]:.1f} = "
               f"{(made + curve[-1][0]) / single[-1][0]:.2f})" if curve[-1][1] <= target
               else f"not in {len(curve)} iterations ({made + curve[-1][0]:.1f} s): {min(l for _, l in curve):.4g}")
        print(f"{name:<48} {made:>7.1f} {_marks(curve)}   {end}", flush=True)


if __name__ == "__main__":
    main()
