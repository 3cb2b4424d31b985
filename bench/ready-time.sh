#!/usr/bin/env bash
# Time from start to READY with N deliveries queued (default 100,000).
#
# Fills Herald's queue through smtp-source while delivery points at a closed port (so nothing
# leaves), stops it with SIGTERM, then starts it again R times and reports the time from exec
# to the "herald: ready" line (READY=1 is sent at the same moment).
# Usage: bench/ready-time.sh [--messages N] [--restarts R] [--size BYTES]
# (bodies over 16 KiB are kept in the body spool, smaller ones in sled)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MESSAGES=100000
RESTARTS=5
SIZE=2048
while [ $# -gt 0 ]; do
  case "$1" in
    --messages) MESSAGES=$2; shift 2;;
    --restarts) RESTARTS=$2; shift 2;;
    --size) SIZE=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
command -v smtp-source >/dev/null || { echo "needs smtp-source (apt-get install postfix)" >&2; exit 2; }
(cd "$ROOT" && cargo build --release --locked -q)
HERALD=$ROOT/target/release/herald
WORK=$(mktemp -d /tmp/herald-ready.XXXXXX)
CLOSED=127.0.0.1:9   # discard port; nothing listens there
cat > "$WORK/herald.toml" <<TOML
hostname = "bench.localdomain"
data_dir = "$WORK/data"
trusted_networks = ["127.0.0.0/8"]
[listen]
submission = ["127.0.0.1:3625"]
submissions = ["127.0.0.1:0"]
inbound = ["127.0.0.1:0"]
http = ["127.0.0.1:0"]
[[users]]
name = "bench"
password_hash = "$(echo bench-password | "$HERALD" hash-password)"
senders = ["*@src.bench.test"]
[delivery]
relay = "$CLOSED"
retry = ["8h"]
TOML
start() {
  : > "$WORK/stdout"
  HERALD_LOG=warn "$HERALD" serve --config "$WORK/herald.toml" > "$WORK/stdout" 2>> "$WORK/stderr" &
  PID=$!
  local t0=$(date +%s.%N)
  while ! grep -q "herald: ready" "$WORK/stdout"; do
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/stderr"; exit 1; }
    sleep 0.005
  done
  SECS=$(python3 -c "print(f'{$(date +%s.%N) - $t0:.3f}')")
}
stop() { kill -TERM "$PID"; wait "$PID" || true; }

start
echo "filling the queue with $MESSAGES messages..." >&2
t=$(date +%s)
smtp-source -c -m "$MESSAGES" -s 20 -l "$SIZE" -f bench@src.bench.test -t rcpt@d.bench.test 127.0.0.1:3625 >/dev/null
echo "filled in $(( $(date +%s) - t ))s" >&2
stop
for i in $(seq "$RESTARTS"); do
  start
  n=$(grep -o 'queue: [0-9]*' "$WORK/stdout" | grep -o '[0-9]*')
  echo "restart $i: READY after ${SECS}s with $n messages queued"
  stop
done
du -sh "$WORK/data" | sed 's/^/database size: /'
rm -rf "$WORK"
