"""DCGAN training: images in, keyword-only settings, events out.

The loop is Goodfellow et al.'s alternating one: a discriminator step on a real and a generated
batch, then a generator step through the updated discriminator, with the non-saturating generator
loss (-log D(G(z))) and one-sided label smoothing of the real labels (Salimans et al. 2016, as the
TensorFlow DCGAN tutorial does: real images are labelled 1 - smoothing, generated ones 0).
Everything that makes a run reproducible (the data order of each epoch, the noise of each step)
derives from the seed and the step, so a run resumed from a checkpoint continues as it would have.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from dreamrender.models import DCGANDiscriminator, DCGANGenerator, init_dcgan
from dreamrender.settings import GanSettings

from .events import EventSink, Frame, Progress, RenderStats, Result, Scores, TrainingCheckpoint
from .runtime import CancelToken, check_cancel

__all__ = ["train_gan", "standing_statistics", "sample_grid", "GRID", "steps_per_epoch", "total_steps"]

GRID = 5  # the preview grid is GRID x GRID samples from fixed noise
Scorer = Callable[[DCGANGenerator, int], Mapping[str, float]]


def _mix(seed: int, salt: int, n: int) -> int:
    """A per-epoch or per-step seed derived from the run's (any of 2**63 seeds stays in range)."""
    return (seed * salt + n) % 2**63


def steps_per_epoch(n: int, batch: int) -> int:
    """Full batches per pass over `n` images (a last partial batch is dropped: batch norm
    statistics of a handful of images are noise); one batch of all when `n` < `batch`."""
    return max(1, n // batch)


def total_steps(s: GanSettings, n: int) -> int:
    return s.steps or s.epochs * steps_per_epoch(n, s.batch)


def sample_grid(images: torch.Tensor, columns: int, pad: int = 2) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> one uint8 (H', W', 3) RGB grid, `pad` px of grey between cells."""
    n, c, h, w = images.shape
    rows = -(-n // columns)
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 64, np.uint8)
    cells = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte()
    cells = cells.expand(-1, 3, -1, -1) if c == 1 else cells
    for i, img in enumerate(cells.permute(0, 2, 3, 1).numpy()):
        r, k = divmod(i, columns)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + k * (w + pad): pad + k * (w + pad) + w] = img
    return grid


@dataclass
class _Run:
    """The networks and optimisers of one training run, and where it has got to."""

    g: DCGANGenerator
    d: DCGANDiscriminator
    opt_g: torch.optim.Adam
    opt_d: torch.optim.Adam
    ema: DCGANGenerator | None = None  # the generator's moving average: what is sampled and kept
    step: int = 0
    _kept: tuple[int, DCGANGenerator] | None = None  # (step, the sampler with standing statistics)

    @property
    def sampler(self) -> DCGANGenerator:
        return self.ema if self.ema is not None else self.g

    def kept(self, seed: int) -> DCGANGenerator:
        """What is sampled, scored and kept now: the sampler with standing statistics, made once
        per step (a step can end an epoch, show a grid and end the run)."""
        if self._kept is None or self._kept[0] != self.step:
            self._kept = (self.step, standing_statistics(self.sampler, seed=seed))
        return self._kept[1]

    def state(self) -> dict:
        return {"g": self.g.state_dict(), "d": self.d.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "step": self.step,
                "ema": self.ema.state_dict() if self.ema is not None else {}}

    @torch.no_grad()
    def average(self, decay: float) -> None:
        """Yazici et al. 2019: an exponential moving average of the generator's weights samples
        better than the weights themselves, which chase a moving discriminator. The decay ramps up
        as TensorFlow's ExponentialMovingAverage does with num_updates, so early steps are not
        dominated by the random start; batch norm's running statistics are copied."""
        if self.ema is None:
            return
        d = min(decay, (1 + self.step) / (10 + self.step))
        for avg, p in zip(self.ema.parameters(), self.g.parameters()):
            avg.lerp_(p, 1 - d)
        for avg, b in zip(self.ema.buffers(), self.g.buffers()):
            avg.copy_(b)

    def load(self, state: Mapping) -> None:
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.g.load_state_dict(state["g"])
        self.d.load_state_dict(state["d"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.step = int(state["step"])


def _build(s: GanSettings, classes: int, device: torch.device) -> _Run:
    torch.manual_seed(s.seed)
    g = DCGANGenerator(latent=s.latent, channels=s.image_channels, size=s.size, classes=classes, dropout=s.dropout,
                       width=s.width)
    d = DCGANDiscriminator(channels=s.image_channels, size=s.size, classes=classes, width=s.width)
    init_dcgan(g)
    init_dcgan(d)
    g, d = g.to(device), d.to(device)
    ema = copy.deepcopy(g).eval().requires_grad_(False) if s.ema else None
    return _Run(g, d, torch.optim.Adam(g.parameters(), s.lr_g, betas=(s.beta1, s.beta2)),
                torch.optim.Adam(d.parameters(), s.lr_d, betas=(s.beta1, s.beta2)), ema)


def _batch(images: torch.Tensor, labels: torch.Tensor | None, s: GanSettings, step: int, per_epoch: int,
           classes: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The real batch of `step`: epoch e's order is a permutation seeded by (seed, e)."""
    epoch, k = divmod(step, per_epoch)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(_mix(s.seed, 1_000_003, epoch)))
    idx = order[k * s.batch: (k + 1) * s.batch] if len(images) >= s.batch else order
    real = images[idx].to(device, torch.float32).div_(127.5).sub_(1.0)
    y = F.one_hot(labels[idx], classes).float().to(device) if classes else None
    return real, y


def _step(run: _Run, real: torch.Tensor, y: torch.Tensor | None, s: GanSettings) -> dict:
    """One discriminator and one generator update; the step's losses and mean D outputs."""
    z = torch.randn(len(real), s.latent).to(real.device)
    fake = run.g(z, y)
    d_real, d_fake = run.d(real, y), run.d(fake.detach(), y)
    d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, 1.0 - s.label_smoothing))
              + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    run.opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    run.opt_d.step()
    for i in range(s.g_steps):
        d_gen = run.d(fake if i == 0 else run.g(z, y), y)  # through the updated discriminator
        g_loss = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))  # non-saturating
        run.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        run.opt_g.step()
    return {"d_loss": float(d_loss.detach()), "g_loss": float(g_loss.detach()),
            "d_x": float(torch.sigmoid(d_real.detach()).mean()), "d_g_z": float(torch.sigmoid(d_fake.detach()).mean())}


def _fixed_noise(s: GanSettings, classes: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The preview grid's noise (the same at every frame, so the grid shows learning, not luck);
    a conditional grid runs through the classes in reading order."""
    z = torch.randn(GRID * GRID, s.latent, generator=torch.Generator().manual_seed((s.seed + 1) % 2**63)).to(device)
    y = F.one_hot(torch.arange(GRID * GRID) % classes, classes).float().to(device) if classes else None
    return z, y


_STANDING_BATCHES = 16  # batches of noise whose statistics batch norm keeps (1,024 samples)


@torch.no_grad()
def standing_statistics(net: DCGANGenerator, *, seed: int, batch: int = 64) -> DCGANGenerator:
    """A copy of `net` in eval mode whose batch norms hold the exact mean and variance of its own
    activations over fresh noise (Brock et al. 2019's "standing statistics").

    The running averages kept while training mix the statistics of many earlier weights, and the
    generator's weight average (`ema`) and several generator steps per step (`g_steps`) make them
    stale: measured on mnist after 5 epochs, conditional, g_steps 2, the digit score was 0.64 with
    the running averages and 0.77 with these (bench/bench_gan.py)."""
    out = copy.deepcopy(net).eval()
    norms = [m for m in out.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
        m.train()
    device = next(out.parameters()).device
    gen = torch.Generator().manual_seed(seed % 2**63)
    for _ in range(_STANDING_BATCHES):
        z = torch.randn(batch, net.latent, generator=gen).to(device)
        y = F.one_hot(torch.randint(0, net.classes, (batch,), generator=gen), net.classes).float().to(device) \
            if net.classes else None
        out(z, y)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
        m.eval()
    return out


@torch.no_grad()
def _grid(run: _Run, fixed: tuple[torch.Tensor, torch.Tensor | None], seed: int) -> np.ndarray:
    return sample_grid(run.kept(seed)(*fixed), GRID)


@dataclass
class _Reports:
    """What a run sends after each step: progress, grids, per-epoch scores and checkpoints."""

    s: GanSettings
    emit: EventSink
    per_epoch: int
    total: int
    fixed: tuple[torch.Tensor, torch.Tensor | None]
    score: Scorer | None
    checkpoint_every: int
    first: int
    started: float = field(default_factory=time.perf_counter)

    def after(self, run: _Run, values: dict[str, float]) -> None:
        s, step = self.s, run.step
        epoch, k = divmod(step, self.per_epoch)
        rate = (step - self.first) / max(time.perf_counter() - self.started, 1e-9)
        values |= {"steps_per_second": rate, "epoch": step / self.per_epoch}
        if step % s.progress_every == 0 or step == self.total:
            epochs = -(-self.total // self.per_epoch)
            self.emit(Progress("epoch", epoch - 1 if k == 0 else min(epoch, epochs - 1), epochs, step, self.total,
                               dict(values), time.perf_counter() - self.started, (self.total - step) / rate, "fp32"))
        if s.preview.every and step % s.preview.every == 0:
            self.emit(Frame(_grid(run, self.fixed, s.seed), step, values["g_loss"], "epoch", epoch))
        if k == 0 or step == self.total:  # an epoch's end (or the run's): scores, and a state to resume from
            if self.score is not None:
                net = run.kept(s.seed)
                self.emit(Scores(step, epoch - 1 if k == 0 else epoch, dict(self.score(net, epoch)), "gan"))
            self.emit(TrainingCheckpoint(run.state(), step))
        elif self.checkpoint_every and step % self.checkpoint_every == 0:
            self.emit(TrainingCheckpoint(run.state(), step))


def train_gan(images: torch.Tensor, labels: torch.Tensor | None = None, *, settings: GanSettings,
              on_event: EventSink | None = None, cancel: CancelToken | None = None,
              device: torch.device | None = None, resume: Mapping | None = None,
              score: Scorer | None = None, checkpoint_every: int = 0) -> tuple[DCGANGenerator, Result]:
    """Train a DCGAN on `images` (uint8 (N, C, size, size)); `labels` (N,) when conditional.

    Events: Progress every `progress_every` steps (values d_loss, g_loss, d_x, d_g_z,
    steps_per_second); a Frame of the fixed-noise grid every `preview.every` steps; Scores from
    `score(generator, epoch)` at each epoch's end; a TrainingCheckpoint at each epoch's end and
    every `checkpoint_every` steps. `resume` is a checkpoint's state. Returns the generator (eval
    mode, on the CPU) and the Result (the last grid, the last step's values), which the caller
    sends once it has kept the generator.
    """
    s = settings
    device = device or torch.device("cpu")
    classes = int(labels.max()) + 1 if s.conditional and labels is not None else 0
    run = _build(s, classes, device)
    if resume is not None:
        run.load(resume)
    per_epoch, total = steps_per_epoch(len(images), s.batch), total_steps(s, len(images))
    fixed = _fixed_noise(s, classes, device)
    reports = _Reports(s, on_event or (lambda e: None), per_epoch, total, fixed, score, checkpoint_every, run.step)
    values: dict[str, float] = {}
    while run.step < total:
        check_cancel(cancel)
        real, y = _batch(images, labels, s, run.step, per_epoch, classes, device)
        # Each step's noise and dropout masks come from its own seed, so a resumed run repeats them.
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(_mix(s.seed, 7_919, run.step))
            values = _step(run, real, y, s)
        run.average(s.ema)
        run.step += 1
        reports.after(run, values)
    final = run.kept(s.seed)
    grid = _grid(run, fixed, s.seed)
    result = Result(grid, RenderStats(grid.shape[1], grid.shape[0], run.step, time.perf_counter() - reports.started,
                                      s.name or "dcgan", str(device), s.seed, values))
    return final.cpu(), result
