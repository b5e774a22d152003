#!/usr/bin/env bash
# Remakes the README's pictures (docs/*.jpg, docs/*.webp) through a real dreamd, as a caller would
# get them: run it after README command 1 (which installs dreamrender and pulls the weights), and
# again whenever the renders change.
#
#   bash docs/make_pictures.sh            # about a minute on 2 cores with native bf16
#
# Environment: VENV (default .venv), DREAMRENDER_MODELS (as for dreamd).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
CTL="$VENV/bin/dreamctl"
WORK=$(mktemp -d)
PHOTO=server/assets/chelsea.png
STYLE=server/assets/starry_night.jpg

source deploy/start_dreamd.sh
start_dreamd "$WORK"
trap 'kill $DREAMD 2>/dev/null; wait $DREAMD 2>/dev/null || true; rm -rf "$WORK"' EXIT
S=$SERVER

# The renders, as README command 1 makes them.
"$CTL" --server "$S" -q dream "$PHOTO" --size 360 -o "$WORK/dream.png"
"$CTL" --server "$S" -q style "$PHOTO" "$STYLE" --method feed-forward --size 512 -o "$WORK/feedforward.png"
"$CTL" --server "$S" -q style "$PHOTO" "$STYLE" --init feed-forward --size 320 --scales 1 --iterations 24 \
  -o "$WORK/gatys.png"
# The stream of a dream forming: every step's frame of a one-octave dream from the photo.
"$CTL" --server "$S" -q dream "$PHOTO" --octaves 1 --steps 24 --size 320 -o "$WORK/forming.png" \
  --frames "$WORK/forming_frames" --every 4
"$CTL" --server "$S" -q presets "$PHOTO" --tile 160 --columns 7 -o "$WORK/presets.png"
"$CTL" --server "$S" -q dream "$PHOTO" --size 224 --zoom-frames 30 --zoom 1.04 --steps 4 --frame-ms 100 \
  -o "$WORK/zoom.webp"

# Small copies for the README: JPEGs of 360 px, a strip of the stream's frames, the zoom as is.
# The page mid-render and on a phone, in headless Chromium (it starts its own dreamd and dreamweb).
"$PY" bench/bench_web.py --rounds 0 --shots "$WORK/web"

"$PY" - "$WORK" <<'PY'
import sys
from pathlib import Path
from PIL import Image

work, docs = Path(sys.argv[1]), Path("docs")
def small(src, name, side=360):
    im = Image.open(src).convert("RGB")
    im.thumbnail((side, side), Image.LANCZOS)
    im.save(docs / name, quality=85)
small("server/assets/chelsea.png", "photo.jpg")
for name in ("dream", "feedforward", "gatys"):
    small(work / f"{name}.png", f"{name}.jpg")
small(work / "presets.png", "presets.jpg", side=900)
frames = sorted((work / "forming_frames").iterdir())
tiles = [Image.open(f).convert("RGB") for f in frames]
for t in tiles:
    t.thumbnail((180, 180), Image.LANCZOS)
strip = Image.new("RGB", (sum(t.width for t in tiles) + 4 * (len(tiles) - 1), tiles[0].height), "white")
x = 0
for t in tiles:
    strip.paste(t, (x, 0))
    x += t.width + 4
strip.save(docs / "forming.jpg", quality=80)
zoom = Image.open(work / "zoom.webp")
zoom.save(docs / "zoom.webp", save_all=True, quality=60, loop=0,
          duration=zoom.info.get("duration", 100))
Image.open(work / "web/web_mid_render.png").convert("RGB").save(docs / "web_forming.jpg", quality=80)
Image.open(work / "web/web_phone.png").convert("RGB").crop((0, 0, 390, 880)).save(docs / "web_phone.jpg", quality=78)
for p in sorted(docs.glob("*.jpg")) + [docs / "zoom.webp"]:
    print(f"{p}: {p.stat().st_size // 1024} KB")
PY
