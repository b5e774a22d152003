# Sourced by deploy/quickstart.sh and docs/make_pictures.sh.

# wait_listening PID FILE TRIES PAUSE: 0 once FILE says "listening"; 1 when PID has exited or
# TRIES pauses have passed (the process is then stopped, so that no half-started one lingers).
wait_listening() {
  local pid=$1 file=$2
  for _ in $(seq 1 "$3"); do
    grep -q "listening" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep "$4"
  done
  grep -q "listening" "$file" 2>/dev/null && return 0
  kill "$pid" 2>/dev/null
  return 1
}

# start_dreamd DIR starts "$VENV/bin/dreamd" on a free loopback port with its output in DIR,
# waits until it listens, and sets SERVER (HOST:PORT) and DREAMD (its pid). The caller stops it
# (kill "$DREAMD").
start_dreamd() {
  local dir=$1
  mkdir -p "$dir"
  "$VENV/bin/dreamd" --listen 127.0.0.1:0 >"$dir/dreamd.out" 2>"$dir/dreamd.log" &
  DREAMD=$!
  wait_listening "$DREAMD" "$dir/dreamd.out" 120 0.5 || { cat "$dir/dreamd.log"; return 1; }
  SERVER=$(awk '/listening/ {print $NF}' "$dir/dreamd.out")
}

# start_dreamweb DIR starts "$VENV/bin/dreamweb" in front of $SERVER, on 127.0.0.1:$DREAMWEB_PORT
# (default 8080; any free port when that one is taken), and sets WEB_URL and DREAMWEB (its pid).
start_dreamweb() {
  local dir=$1 port=${DREAMWEB_PORT:-8080}
  for listen in "127.0.0.1:$port" "127.0.0.1:0"; do
    "$VENV/bin/dreamweb" --dreamd "$SERVER" --listen "$listen" >"$dir/dreamweb.out" 2>"$dir/dreamweb.log" &
    DREAMWEB=$!
    if wait_listening "$DREAMWEB" "$dir/dreamweb.out" 60 0.25; then
      WEB_URL=$(grep -o 'http://[^ ]*' "$dir/dreamweb.out" | head -1)
      return 0
    fi
  done
  cat "$dir/dreamweb.log"
  return 1
}
