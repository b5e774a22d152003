"""What a render needs: when style losses are tiled, how many L-BFGS pairs fit, and the peak memory
a job adds to the server (what `--max-job-memory` checks before any work).

The memory figures are per-pixel costs fitted to bench/bench_memory.py's peaks on VGG16 (which
prints each estimate beside the measured peak); they estimate a job's peak above an idle server,
rounded up, not exactly.
"""
from __future__ import annotations

from typing import Sequence

from dreamrender.settings import LARGE_SCALE_PIXELS, DreamSettings, GanSettings, StyleSettings

__all__ = ["AUTO_TILE_PIXELS", "AUTO_TILE", "LBFGS_HISTORY_BYTES", "LBFGS_STORAGE", "STORAGE_BYTES", "MIN_LBFGS_PAIRS", "style_tile", "lbfgs_pairs",
           "style_memory", "dream_memory", "gan_memory", "feed_forward_memory", "evaluate_memory", "MiB", "EVAL_MAX_PIXELS",
           "scale_cost", "TILED_COST"]

MiB = 1 << 20

# Above this many pixels a scale's style loss is tiled: VGG16's activations with autograd take
# about 2.3 KB per pixel, so 1 Mpx untiled needs ~2.3 GB for them alone. The same "large scale"
# that refines in `large_iterations` (the settings' threshold, one figure for both). A render
# whose final scale is tiled also tiles its coarser scales over half of that: its memory is then
# set by the tiles, and a 1024x683 middle scale of a 3-scale 2048 px render run untiled set its
# peak (2844 MiB against 2509 for the whole render with it tiled). A 1024 px render alone stays
# untiled, where tiling would cost it 2.4x the time per iteration (bench/bench_memory.py).
AUTO_TILE_PIXELS = LARGE_SCALE_PIXELS
# A tile's forward and backward is transient heap that sets a large scale's peak, so the side
# is a memory choice. In-process at 2048 px (VGG16, 3 L-BFGS iterations, peak RSS): 512 px tiles
# 2407 MiB in fp32 and 2604 MiB under bf16 autocast (which keeps bf16 copies beside fp32 ones),
# 1.7-1.9 GB of it freed after each iteration; 384 px tiles 1887 MiB in fp32, for about 15% more
# time per iteration (halos are a larger share of a smaller tile).
AUTO_TILE = 384
STYLE_HALO = 64  # VGG16's (engine/_tiles.py computes each network's own)

# L-BFGS keeps two image-sized vectors per correction pair, stored in LBFGS_STORAGE (engine/
# _lbfgs.py scales each into float16's range): 100 pairs are 200 MiB at 512x341 and 3.2 GiB at
# 2048x1365. The history adapts to this budget (never below MIN_LBFGS_PAIRS).
# bench/bench_lbfgs_history.py, 512 px, 300 iterations, best loss against 100 float32 pairs:
# 50 pairs (this budget at 512 px) within 0.5% at every iteration; 25 within 1.5%; 10 within
# 4%, and all of them within 1% over the first 25 iterations, which is why the few pairs left at
# 2048 px do for a large scale's 30 refining iterations. Float16 pairs against float32 ones:
# see LBFGS_STORAGE_NOTE in the README's memory section.
LBFGS_HISTORY_BYTES = 100 * MiB
LBFGS_STORAGE = "float16"
STORAGE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}  # per element, by dtype name
MIN_LBFGS_PAIRS = 5

# Checkpoint scoring (the server's evaluator) works on at most this many pixels (a 512x512
# image; a 512x341 render is scored whole). onnxruntime's forward at 1 Mpx held about 1 GB
# beside the render (its outputs alone are 545 MB for the six style layers).
EVAL_MAX_PIXELS = 512 * 512

# Fitted to bench/bench_memory.py's peaks (VGG16, evaluator on), rounded up: the estimate should
# not fall below what a job takes, or admission would let through a job the machine kills.
_ACT_BYTES_PER_PX = 2300  # VGG16 to relu5_1, forward + backward, fp32 (L-BFGS's warm-up is fp32 always)
_EVAL_BYTES_PER_PX = 600  # onnxruntime's forward (two live activations at a time) plus the scores' copies
_MAP_BYTES_PER_PX = 32  # the content target (relu4_2: 512 channels at 1/64 of the pixels)
_STYLE_BASE = 550 * MiB  # the model, the evaluator's session, the targets' transients, allocator slack
_DREAM_BASE = 750 * MiB
_STYLE_VECTORS = 16  # image-sized float32 tensors besides the history (x, grads, best, checkpoint copies)
_LBFGS_VECTORS = 9  # L-BFGS's own (direction, flat gradients, previous gradient, ...)
_DREAM_VECTORS = 6  # image, octave base, detail, rolled copy, gradient, result


def style_tile(s: StyleSettings, hw: Sequence[int]) -> int | None:
    """The tile side a scale of size `hw` is computed in, or None for untiled (see AUTO_TILE_PIXELS:
    over 1 Mpx, or over 0.5 Mpx in a render whose final scale, `s.size` on its longer side, is tiled)."""
    h, w = hw
    if s.tile_size:
        return s.tile_size if max(h, w) > s.tile_size else None
    final = h * w * (s.size / max(h, w)) ** 2  # the render's last scale, at `s.size` on its longer side
    large = h * w > AUTO_TILE_PIXELS or (final > AUTO_TILE_PIXELS and h * w > AUTO_TILE_PIXELS // 2)
    return AUTO_TILE if large else None


# A tiled scale's work per pixel: pass 2 over the halos' overlap, plus pass 1's forward.
TILED_COST = 2.0


def scale_cost(s: StyleSettings, hw: Sequence[int]) -> float:
    """One iteration's work at a scale of size `hw`, in pixel units (untiled: its pixels)."""
    return hw[0] * hw[1] * (TILED_COST if style_tile(s, hw) else 1.0)


def lbfgs_pairs(s: StyleSettings, pixels: int) -> int:
    """L-BFGS pairs kept at a scale of `pixels`: as asked, within LBFGS_HISTORY_BYTES."""
    fit = LBFGS_HISTORY_BYTES // (2 * 3 * STORAGE_BYTES[LBFGS_STORAGE] * pixels)
    return max(1, min(s.lbfgs_history, max(MIN_LBFGS_PAIRS, fit)))


def style_memory(sizes: Sequence[tuple[int, int]], s: StyleSettings, *, evaluator: bool) -> int:
    """Peak bytes a Gatys render adds, over its scales of (h, w) `sizes`."""
    peak = 0
    for h, w in sizes:
        px = h * w
        tile = style_tile(s, (h, w))
        act_px = min(px, (tile + 2 * STYLE_HALO) ** 2) if tile else px
        lbfgs = s.optimizer == "lbfgs"
        vectors = _STYLE_VECTORS + (_LBFGS_VECTORS if lbfgs else 0)
        history = 2 * 3 * STORAGE_BYTES[LBFGS_STORAGE] * lbfgs_pairs(s, px) if lbfgs else 0
        scoring = min(px, EVAL_MAX_PIXELS) * _EVAL_BYTES_PER_PX if evaluator else 0
        peak = max(peak, act_px * _ACT_BYTES_PER_PX + px * (12 * vectors + history + _MAP_BYTES_PER_PX) + scoring)
    return peak + _STYLE_BASE


def dream_memory(h: int, w: int, s: DreamSettings, *, evaluator: bool) -> int:
    """Peak bytes a dream of output (h, w) adds: one tile's activations and the image-sized tensors."""
    tile_px = min(h, s.tile_size) * min(w, s.tile_size)
    scoring = min(h * w, EVAL_MAX_PIXELS) * _EVAL_BYTES_PER_PX if evaluator else 0
    return tile_px * _ACT_BYTES_PER_PX + h * w * 12 * _DREAM_VECTORS + scoring + _DREAM_BASE


_GAN_BASE = 300 * MiB  # both networks, their Adam moments and gradients, torch's own, allocator slack
_GAN_FID = 450 * MiB  # Inception v3 (90 MB of weights) and its activations at 299 px in batches of 50
_GAN_ACTIVATION_BYTES = 800  # per batch image per output pixel: G's and D's saved activations (64 px: 100 MB)


def gan_memory(s: GanSettings, images: int) -> int:
    """Peak bytes a DCGAN training run adds: networks, a batch's activations, the uint8 data
    (`images` of them at the training size) and, with FID, Inception v3."""
    data = images * s.image_channels * s.size * s.size
    return _GAN_BASE + data + s.batch * s.size * s.size * _GAN_ACTIVATION_BYTES + (_GAN_FID if s.fid_samples else 0)


_FF_BASE = 60 * MiB  # the sessions beyond their arenas, the decoded images
# Peak RSS growth per output pixel of a feed-forward painting: onnxruntime's arena grows to its
# largest run (the 26-style network at 2048 px: 810 bytes/px on its first run here) plus the
# padded input, the output and its uint8 and PNG copies. #28 D23 measured 1050 bytes/px at 2048
# and 4096 px (3249 MB, 11.9 GB); 320 here was 3x low, and feed-forward went unchecked.
_FF_BYTES_PER_PX = 1100


def feed_forward_memory(h: int, w: int) -> int:
    """Peak bytes a feed-forward painting of (h, w) adds."""
    return _FF_BASE + h * w * _FF_BYTES_PER_PX


# Evaluate (#28 D24): onnxruntime's forward of the largest candidate with every scored layer's
# output held, the style image's at that size for the Grams, and the float64 blocks of the Grams.
# Measured here: the targets and one candidate at 512x341 peaked 258 MB above the session; a
# 2048x2048 candidate took a server from 318 to 7186 MB (1.6 kB/px).
_EVAL_CALL_BYTES_PER_PX = 1700
_EVAL_CALL_BASE = 250 * MiB  # the session, and its export's torch network the first time a layer set is used


def evaluate_memory(sizes: Sequence[tuple[int, int]]) -> int:
    """Peak bytes an Evaluate call of candidates of (h, w) `sizes` adds (they are scored one by one)."""
    return _EVAL_CALL_BASE + max(h * w for h, w in sizes) * _EVAL_CALL_BYTES_PER_PX
