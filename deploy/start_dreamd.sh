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

# start_dreamweb DIR starts "$VENV/bin/dreamweb" in front of $SERVER, on 127.0.0.1:$DREAMWEB_PORT
# (default 8080; any free port when that one is taken), and sets WEB_URL and DREAMWEB (its pid).
start_dreamweb() {
  local dir=$1 port=${DREAMWEB_PORT:-8080}
  for listen in "127.0.0.1:$port" "127.0.0.1:0"; do
    "$VENV/bin/dreamweb" --dreamd "$SERVER" --listen "$listen" >"$dir/dreamweb.out" 2>"$dir/dreamweb.log" &
    DREAMWEB=$!
    for _ in $(seq 1 60); do
      grep -q "listening" "$dir/dreamweb.out" 2>/dev/null && break
      kill -0 "$DREAMWEB" 2>/dev/null || break
      sleep 0.25
    done
    if kill -0 "$DREAMWEB" 2>/dev/null && grep -q "listening" "$dir/dreamweb.out"; then
      WEB_URL=$(grep -o 'http://[^ ]*' "$dir/dreamweb.out" | head -1)
      return 0
    fi
  done
  cat "$dir/dreamweb.log"
  return 1
}
