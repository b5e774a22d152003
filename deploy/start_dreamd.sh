# Sourced by deploy/quickstart.sh and docs/make_pictures.sh: start_dreamd DIR starts "$VENV/bin/dreamd"
# on a free loopback port with its output in DIR, waits until it listens, and sets SERVER
# (HOST:PORT) and DREAMD (its pid). The caller stops it (kill "$DREAMD").
start_dreamd() {
  local dir=$1
  mkdir -p "$dir"
  "$VENV/bin/dreamd" --listen 127.0.0.1:0 >"$dir/dreamd.out" 2>"$dir/dreamd.log" &
  DREAMD=$!
  for _ in $(seq 1 120); do
    grep -q "listening" "$dir/dreamd.out" 2>/dev/null && break
    kill -0 "$DREAMD" 2>/dev/null || { cat "$dir/dreamd.log"; return 1; }
    sleep 0.5
  done
  SERVER=$(awk '/listening/ {print $NF}' "$dir/dreamd.out")
}
