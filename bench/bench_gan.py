"""GAN training and sampling (#25), measured in one run.

    python bench/bench_gan.py [--steps 100] [--epochs 5] [--out bench_out/gan] [--settings KEY=VALUE ...]

1. Speed: our training loop (server/engine/gan.py, as dreamd's worker runs it, scoring off) beside
   a plain PyTorch loop of the same networks, batch (64) and data (mnist), each in its own process,
   in turns (ours, plain, ours, plain): median time per step after 5 warm-up steps, and peak RSS.
2. Quality: `--epochs` epochs of mnist at batch 64 through a real dreamd (TrainGenerator, FID from
   500 samples at each epoch's end), then the digit score of 1,000 samples (the fraction the
   classifier gives p > 0.9, and each digit's share of them) and the final grid saved to --out.
3. Sampling latency on that warm server: a 5x5 grid and a 60-frame walk, 5 calls each (median).

Needs mnist, mnist_full and inception_v3 in $DREAMRENDER_MODELS (dreamctl models pull ...).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BATCH = 64
# The speed runs compare like with like: the textbook step (one generator update, no weight
# average, Radford's Adam) on both sides, whatever the service's defaults are.
TEXTBOOK = dict(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, g_steps=1, ema=0.0, dropout=0.3)


def _plain_loop(images, steps: int) -> list[float]:
    """The textbook loop (as pytorch/examples' dcgan writes it), on our networks: per-step times."""
    import torch
    import torch.nn.functional as F

    from dreamrender.models import DCGANDiscriminator, DCGANGenerator, init_dcgan

    torch.manual_seed(0)
    g = DCGANGenerator(latent=100, channels=1, size=28, dropout=TEXTBOOK["dropout"])
    d = DCGANDiscriminator(channels=1, size=28)
    init_dcgan(g)
    init_dcgan(d)
    opt_g = torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    times = []
    order = torch.randperm(len(images))
    for step in range(steps):
        t = time.perf_counter()
        idx = order[(step * BATCH) % (len(images) - BATCH):][:BATCH]
        real = images[idx].float() / 127.5 - 1
        fake = g(torch.randn(BATCH, 100))
        out_r, out_f = d(real), d(fake.detach())
        loss_d = F.binary_cross_entropy_with_logits(out_r, torch.full_like(out_r, 0.9)) + \
            F.binary_cross_entropy_with_logits(out_f, torch.zeros_like(out_f))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        out = d(fake)
        loss_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        times.append(time.perf_counter() - t)
    return times


def _ours(images, labels, steps: int) -> list[float]:
    from dreamrender.server.engine.events import Progress
    from dreamrender.server.engine.gan import train_gan
    from dreamrender.settings import GanSettings, PreviewSettings

    stamps: list[float] = []
    s = GanSettings(name="bench", steps=steps, progress_every=1, fid_samples=0, preview=PreviewSettings(every=0),
                    **TEXTBOOK)
    t0 = time.perf_counter()
    train_gan(images, labels, settings=s,
              on_event=lambda e: stamps.append(time.perf_counter()) if isinstance(e, Progress) else None)
    edges = [t0] + stamps
    return [b - a for a, b in zip(edges, edges[1:])]


def child(kind: str, steps: int) -> None:
    import torch

    from dreamrender.models import ModelStore
    from dreamrender.server.datasets import load_mnist

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    data = load_mnist(ModelStore(), "mnist", 28)
    times = _ours(data.images, data.labels, steps) if kind == "ours" else _plain_loop(data.images, steps)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"step": statistics.median(times[5:]), "peak_mb": peak}))


def speed(steps: int) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {"ours": [], "plain": []}
    for kind in ("ours", "plain", "ours", "plain"):
        out = subprocess.run([sys.executable, __file__, "--child", kind, "--steps", str(steps)], check=True,
                             capture_output=True, text=True).stdout
        runs[kind].append(json.loads(out.strip().splitlines()[-1]))
    return runs


def _dreamd(tmp: Path) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen([str(Path(sys.executable).parent / "dreamd"), "--listen", "127.0.0.1:0", "--device", "cpu",
                          "--data-dir", str(tmp / "jobs")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    if not line.startswith("dreamd listening"):
        raise SystemExit("dreamd did not start")
    return p, line.split()[-1]


def quality_and_sampling(epochs: int, out: Path, settings: dict) -> None:
    from PIL import Image

    from dreamrender.client import DreamClient
    from dreamrender.v1 import dreamrender_pb2 as pb

    with tempfile.TemporaryDirectory() as tmp:
        proc, target = _dreamd(Path(tmp))
        try:
            with DreamClient(target) as c:
                t0 = time.perf_counter()
                name = "bench_digits"
                print(f"\ntraining {epochs} epochs of mnist at batch {BATCH} through dreamd {settings or ''}")
                for ev in c.train_generator(name, epochs=epochs, batch=BATCH, fid_samples=500, timeout=7200,
                                            **settings):
                    if isinstance(ev, pb.CheckpointScores):
                        v = ev.values
                        print(f"  epoch {ev.stage_index + 1}: FID {v.get('fid', float('nan')):.1f} "
                              f"({v.get('fid_samples', 0):.0f} samples), digit score {v.get('digit_score', 0):.3f}"
                              f" at {time.perf_counter() - t0:.0f} s", flush=True)
                    elif isinstance(ev, pb.Result):
                        Image.open(io.BytesIO(ev.image.data)).save(out / "final_grid.png")
                        v = ev.stats.values
                print(f"  whole job {time.perf_counter() - t0:.1f} s; digit score {v['digit_score']:.3f} "
                      "(goal >= 0.80); confident digits by class: "
                      + " ".join(f"{i}:{v[f'digit_{i}']:.2f}" for i in range(10)) + " (goal: each 0.05-0.15)")
                grid = c.sample(name, count=100, columns=10, seed=7, cell_side=56, timeout=60)
                (out / "samples_100.png").write_bytes(grid)
                for label, kw in (("5x5 grid", dict(count=25)), ("60-frame walk", dict(walk=60, cell_side=112))):
                    times = []
                    for i in range(6):
                        t = time.perf_counter()
                        data = c.sample(name, seed=i, timeout=60, **kw)
                        times.append(time.perf_counter() - t)
                    (out / ("walk.webp" if "walk" in label else "grid.png")).write_bytes(data)
                    print(f"  sampling, {label}: median {statistics.median(times[1:]) * 1000:.0f} ms of 5 warm calls")
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=100, help="steps of each speed run")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--out", type=Path, default=ROOT / "bench_out" / "gan")
    p.add_argument("--settings", nargs="*", default=[], metavar="KEY=VALUE",
                   help="training settings of the quality run (e.g. conditional=true lr_g=1e-3)")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child, a.steps)
        return
    a.out.mkdir(parents=True, exist_ok=True)
    if not a.skip_speed:
        runs = speed(a.steps)
        best = {k: min(r["step"] for r in v) for k, v in runs.items()}
        peak = {k: max(r["peak_mb"] for r in v) for k, v in runs.items()}
        print(f"time per step at batch {BATCH}, 28 px (median after 5 warm-up steps, best of 2 runs each):")
        for k in runs:
            print(f"  {k:6s} {best[k] * 1000:7.1f} ms  peak RSS {peak[k]:6.0f} MB")
        print(f"  ratio ours/plain: {best['ours'] / best['plain']:.3f} (goal <= 1.1)")
    settings = {}
    for kv in a.settings:
        k, _, v = kv.partition("=")
        settings[k] = v.lower() == "true" if v.lower() in ("true", "false") else float(v) if "." in v or "e" in v \
            else int(v)
    quality_and_sampling(a.epochs, a.out, settings)


if __name__ == "__main__":
    main()
