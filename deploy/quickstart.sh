#!/usr/bin/env bash
# README command 1: set up a venv, install dreamrender, fill the model store, start a real dreamd,
# and render the demos (a DeepDream and a style transfer of the bundled photo) through it.
#
#   bash deploy/quickstart.sh            # then open the files it prints
#
# Environment: DREAMRENDER_MODELS (model store, default ~/.cache/dreamrender/models),
# VENV (default .venv), TORCH_SPEC (default torch==2.13.0, a CPU build where one is on disk),
# OUT (default out/), DEMO_STYLE_SIZE (default 384).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
OUT=${OUT:-out}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
export DREAMRENDER_MODELS=${DREAMRENDER_MODELS:-$HOME/.cache/dreamrender/models}

step() { printf '\n==> %s\n' "$*"; }

step "virtual environment $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --disable-pip-version-check --upgrade pip

step "install torch ($TORCH_SPEC) and dreamrender[server,test,deploy] from the lock"
# Every package at the version in deploy/constraints.txt (refresh: bash deploy/lock.sh). torch
# first, pinned: an unpinned torch would pull a multi-GB CUDA build.
LOCK=(-c deploy/constraints.txt)
"$PY" -m pip install -q --disable-pip-version-check "${LOCK[@]}" "$TORCH_SPEC"
"$PY" -m pip install -q --disable-pip-version-check "${LOCK[@]}" -e '.[server,test,deploy]'

step "model weights into $DREAMRENDER_MODELS"
"$VENV/bin/dreamctl" models pull vgg16 mobilenet_v2 multistyle26 arbitrary_predict arbitrary_transform

step "start dreamd"
mkdir -p "$OUT"
"$VENV/bin/dreamd" --listen 127.0.0.1:0 >"$OUT/dreamd.out" 2>"$OUT/dreamd.log" &
DREAMD=$!
trap 'kill $DREAMD 2>/dev/null; wait $DREAMD 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  grep -q "listening" "$OUT/dreamd.out" 2>/dev/null && break
  kill -0 $DREAMD 2>/dev/null || { cat "$OUT/dreamd.log"; exit 1; }
  sleep 0.5
done
SERVER=$(awk '/listening/ {print $NF}' "$OUT/dreamd.out")
echo "dreamd at $SERVER (log: $OUT/dreamd.log)"
"$VENV/bin/dreamctl" --server "$SERVER" health

step "DeepDream of the sample photo (vgg16 relu4_3)"
"$VENV/bin/dreamctl" --server "$SERVER" dream server/assets/chelsea.png -o "$OUT/dream_chelsea.png" \
  --frames "$OUT/dream_frames"

step "style transfer: the sample photo in the manner of The Starry Night (vgg16)"
"$VENV/bin/dreamctl" --server "$SERVER" style server/assets/chelsea.png server/assets/starry_night.jpg \
  -o "$OUT/style_chelsea_starry.png" --size "${DEMO_STYLE_SIZE:-384}" --frames "$OUT/style_frames"

step "feed-forward style: the same painting in one pass of Magenta's arbitrary-style network"
"$VENV/bin/dreamctl" --server "$SERVER" style server/assets/chelsea.png server/assets/starry_night.jpg \
  --method feed-forward --size 512 -o "$OUT/feedforward_chelsea_starry.png"

printf '\nDone. Pictures:\n  %s\n  %s\n  %s\n' "$(realpath "$OUT/dream_chelsea.png")" \
  "$(realpath "$OUT/style_chelsea_starry.png")" "$(realpath "$OUT/feedforward_chelsea_starry.png")"
