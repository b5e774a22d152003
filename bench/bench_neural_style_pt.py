"""Side by side with neural-style-pt on its own default network, VGG19 (#24, acceptance 5).

    python bench/bench_neural_style_pt.py --peer DIR --peer-python PY [--size 512] [--iterations 300]
        [--ours default torch] [--rounds 1] [--threads 2] [--out bench_out/peer]

DIR is a checkout of ProGamerGov/neural-style-pt (neural_style.py and CaffeLoader.py), run
unchanged; PY is a Python with torch and torchvision for it. Both sides get the same VGG19
tensors (ours, from the store, saved in the peer's format: a torchvision-keyed `.pth`), the same
pre-sized content and style pixels (so neither resamples them), the same objective (the peer's
defaults: content relu4_2 at 5, style relu1_1..relu5_1 at 100, no TV, content start, L-BFGS at lr 1)
and 2 threads each, run one after the other in turns (never at once). The peer's style loss is the
*mean* of (G - A)^2 over the C x C Gram; ours is the sum, so each of our style layers is weighted
1/C^2 and the two objectives are the same function of the image.

Each run is a process of its own. The parent stamps every per-iteration loss line as it arrives
(so times are from launch: loading included, as a user waits) and reads the process's peak RSS
from wait4. `--ours` names our variants: `default` is dreamd's L-BFGS (float16 pairs, as many as
100 MiB holds), `torch` keeps 100 float32 pairs as torch.optim.LBFGS does (the control for the
history's precision and count). Finally one evaluator, our VGG19 in fp32 in a fresh process,
scores every run's saved 8-bit output on the same objective.

Reports per run: median s/iter, peak RSS, the loss at checkpoints and its ratio to the peer's, and
the time to reach the peer's final loss (ours runs 1.3x the iterations to find it).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "server" / "assets" / "chelsea.png"
STYLE = ROOT / "server" / "assets" / "starry_night.jpg"
CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_WEIGHT, STYLE_WEIGHT = 5.0, 100.0  # neural-style's defaults


def _settings(net, size: int, iterations: int):
    """Our StyleSettings for the peer's objective on `net`."""
    from dreamrender.settings import StyleImageSettings, StyleLayer, StyleSettings

    per_gram = {n: 1.0 / net.layers[n].channels ** 2 for n in STYLE_LAYERS}  # mean over C x C, not sum
    return StyleSettings(model="vgg19", size=size, scales=1, iterations=iterations, optimizer="lbfgs",
                         learning_rate=1.0, content_weight=CONTENT_WEIGHT, style_weight=STYLE_WEIGHT, tv_weight=0.0,
                         content_layers=tuple(StyleLayer(n) for n in CONTENT_LAYERS),
                         style_layers=tuple(StyleLayer(n, per_gram[n]) for n in STYLE_LAYERS),
                         styles=(StyleImageSettings(),), init="content", precision="fp32")


def _image(path: Path):
    from PIL import Image

    from dreamrender.server.engine.imaging import to_tensor

    return to_tensor(Image.open(path).convert("RGB"))


def worker_ours(variant: str, content: Path, style: Path, size: int, iterations: int, out: Path) -> None:
    """One of our renders, as dreamd's worker runs it; prints each evaluation's loss as it happens."""
    import dataclasses

    import torch
    from PIL import Image

    from dreamrender.models import get_model
    from dreamrender.server.engine import render_style
    from dreamrender.server.engine import style as style_module
    from dreamrender.server.engine.events import Checkpoint, Progress
    from dreamrender.server.engine.imaging import to_uint8
    from dreamrender.server.memory import keep_heap

    keep_heap()
    if variant == "torch":  # torch.optim.LBFGS's history: 100 float32 pairs, past dreamd's budget
        style_module.LBFGS_STORAGE = "float32"
        style_module.lbfgs_pairs = lambda s, pixels: 100
    net = get_model("vgg19")
    s = _settings(net, size, round(iterations * 1.3))  # on past the peer's count, to find its final loss
    s = dataclasses.replace(s, lbfgs_history=100, preview=dataclasses.replace(s.preview, every=iterations))

    def on_event(e) -> None:
        if isinstance(e, Progress):
            print(f"loss {e.step} {e.values['total']!r}", flush=True)
        elif isinstance(e, Checkpoint) and e.step == iterations:  # the image at the peer's count, scored
            Image.fromarray(to_uint8(torch.from_numpy(e.image))).save(out)

    render_style(net, _image(content), [_image(style)], settings=s, on_event=on_event)


def worker_score(content: Path, style: Path, size: int, images: list[Path]) -> None:
    """The one evaluator: the shared objective of each saved image, our VGG19 in fp32."""
    import torch

    from dreamrender.models import get_model
    from dreamrender.server.engine.style import gram, gram_loss

    net = get_model("vgg19")
    s = _settings(net, size, 1)
    with torch.no_grad():
        target_c = net(_image(content), CONTENT_LAYERS)
        target_s = {k: gram(v) for k, v in net(_image(style), STYLE_LAYERS).items()}
        for path in images:
            f = net(_image(path), s.layer_names)
            c = sum((f[n] - target_c[n]).pow(2).mean() for n in CONTENT_LAYERS)
            st = sum(layer.weight * gram_loss(f[layer.layer], target_s[layer.layer]) for layer in s.style_layers)
            print(json.dumps({"image": str(path), "loss": float(CONTENT_WEIGHT * c + STYLE_WEIGHT * st)}))


def _run(cmd: list[str], env: dict, parse, cwd: Path | None = None) -> dict:
    """Run `cmd`; stamp each loss `parse` finds in its output; peak RSS from wait4."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
    stamps: list[tuple[float, float]] = []
    tail: list[str] = []
    assert p.stdout is not None
    for line in p.stdout:
        loss = parse(line)
        if loss is not None:
            stamps.append((time.perf_counter() - t0, loss))
        tail = (tail + [line])[-20:]
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise SystemExit(f"{cmd[:3]} failed ({p.returncode}):\n{''.join(tail)}")
    return {"stamps": stamps, "wall": time.perf_counter() - t0, "peak_mb": usage.ru_maxrss / 1024}


def _peer_loss(line: str) -> float | None:
    return float(line.split(":")[1]) if line.strip().startswith("Total loss:") else None


def _our_loss(line: str) -> float | None:
    return float(line.split()[2]) if line.startswith("loss ") else None


def _prepare(work: Path, size: int, net_file: Path) -> tuple[Path, Path]:
    """Content and style at exactly the render's size (neither side resamples), and our VGG19 in
    the peer's format (its loader picks the architecture from "vgg" and "19" in the file name)."""
    import torch
    from PIL import Image

    from dreamrender.models import get_model
    from dreamrender.server.engine.imaging import fit_long_side

    paths = []
    for src, name in ((CONTENT, "content.png"), (STYLE, "style.png")):
        img = Image.open(src).convert("RGB")
        h, w = fit_long_side(img.height, img.width, size)
        img.resize((w, h), Image.Resampling.LANCZOS).save(work / name)
        paths.append(work / name)
    torch.save(get_model("vgg19").net.state_dict(), net_file)
    return paths[0], paths[1]


def _at(stamps: list[tuple[float, float]], iteration: int) -> float:
    return stamps[min(iteration, len(stamps)) - 1][1]


def _time_to(stamps: list[tuple[float, float]], loss: float) -> tuple[float, int] | None:
    return next(((t, i + 1) for i, (t, l) in enumerate(stamps) if l <= loss), None)


def _report(runs: dict[str, dict], iterations: int, scores: dict[str, float]) -> None:
    peer = runs["peer"]
    target = _at(peer["stamps"], iterations)
    peer_time = peer["stamps"][iterations - 1][0]
    marks = [m for m in (10, 30, 60, 100, 200, 300, 500) if m <= iterations]
    print(f"\nloss at iteration (ratio to the peer's); the peer's loss at {iterations}: {target:.6g}")
    print(f"{'run':14s} {'s/iter':>7s} {'peak MB':>8s} " + " ".join(f"{m:>17d}" for m in marks)
          + f"  {'to peer loss':>22s}  {'scored':>9s}")
    for name, r in runs.items():
        st = r["stamps"]
        per = statistics.median(b[0] - a[0] for a, b in zip(st[1:], st[2:]))
        cells = " ".join(f"{_at(st, m):9.4g} ({_at(st, m) / _at(peer['stamps'], m):.3f})" for m in marks)
        hit = _time_to(st, target)
        to = f"{hit[0]:7.1f} s @{hit[1]:4d} ({hit[0] / peer_time:.2f}x)" if hit else "not reached"
        print(f"{name:14s} {per:7.3f} {r['peak_mb']:8.0f} {cells}  {to:>22s}  {scores[name]:9.4g}")
    print(f"\nratios to the peer: time to its {iterations}-iteration loss (goal <= 0.8x), peak RSS (goal <= 1.0x)")
    for name, r in runs.items():
        if name != "peer":
            hit = _time_to(r["stamps"], target)
            print(f"  {name}: time {hit[0] / peer_time:.2f}x" if hit else f"  {name}: loss not reached",
                  f" peak RSS {r['peak_mb'] / peer['peak_mb']:.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peer", type=Path, help="a neural-style-pt checkout")
    p.add_argument("--peer-python", default=sys.executable, help="a Python with torch and torchvision")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--ours", nargs="*", default=["default", "torch"], choices=("default", "torch"))
    p.add_argument("--rounds", type=int, default=1, help="turns of peer and ours (the best of each is kept)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "bench_out" / "peer")
    p.add_argument("--peer-runs", type=Path, help="a previous run's runs.json in --out: reuse its peer run (and "
                                                    "peer.png) instead of running the peer again")
    p.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        kind, *rest = a.worker
        if kind == "ours":
            worker_ours(rest[0], Path(rest[1]), Path(rest[2]), a.size, a.iterations, Path(rest[3]))
        else:
            worker_score(Path(rest[0]), Path(rest[1]), a.size, [Path(x) for x in rest[2:]])
        return
    if a.peer is None or not (a.peer / "neural_style.py").is_file():
        p.error("--peer must be a neural-style-pt checkout (with neural_style.py)")
    a.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads), PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory() as tmp:
        net_file = Path(tmp) / "vgg19-dreamrender.pth"
        content, style = _prepare(Path(tmp), a.size, net_file)
        runs: dict[str, dict] = {}
        if a.peer_runs:
            runs["peer"] = json.loads(a.peer_runs.read_text())["peer"]
        for turn in range(a.rounds):
            order = ["peer", *a.ours] if turn % 2 == 0 else [*a.ours, "peer"]
            for name in order:
                if name == "peer" and a.peer_runs:
                    continue
                out = a.out / f"{name}.png"
                if name == "peer":
                    cmd = [a.peer_python, "-u", str(a.peer.resolve() / "neural_style.py"), "-content_image",
                           str(content), "-style_image", str(style), "-image_size", str(a.size), "-gpu", "c",
                           "-model_file", str(net_file), "-disable_check", "-init", "image", "-tv_weight", "0",
                           "-num_iterations", str(a.iterations), "-print_iter", "1", "-save_iter", "0",
                           "-output_image", str(out), "-seed", "0"]
                    r = _run(cmd, env, _peer_loss, cwd=a.peer)
                else:
                    cmd = [sys.executable, __file__, "--size", str(a.size), "--iterations", str(a.iterations),
                           "--worker", "ours", name, str(content), str(style), str(out)]
                    r = _run(cmd, env, _our_loss)
                print(f"turn {turn + 1} {name}: {len(r['stamps'])} iterations, {r['wall']:.1f} s, "
                      f"peak {r['peak_mb']:.0f} MB", flush=True)
                if name not in runs or r["wall"] < runs[name]["wall"]:
                    runs[name] = r
        names = list(runs)
        cmd = [sys.executable, __file__, "--size", str(a.size), "--worker", "score", str(content), str(style),
               *[str(a.out / f"{n}.png") for n in names]]
        scored = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout.splitlines()
        scores = {n: json.loads(line)["loss"] for n, line in zip(names, scored)}
    (a.out / "runs.json").write_text(json.dumps(runs))
    print(f"{a.size} px, chelsea in The Starry Night, VGG19, fp32, {a.threads} threads each; outputs in {a.out}")
    _report({"peer": runs.pop("peer"), **runs}, a.iterations, scores)


if __name__ == "__main__":
    main()
