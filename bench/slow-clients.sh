#!/usr/bin/env bash
# Issue 13, defect 1: twenty slow clients must not lock anyone out. A release build of Herald
# with the default [limits]; 20 loopback addresses (127.0.0.2-21) x 50 connections, each
# sending one byte every 5 s of a command line that never ends (reconnecting when closed):
# against 587 for the first half of the run, then (dropping those) against 25; five more send
# DATA a byte at a time on 25. Every 5 s an authenticated submission on 587 and a DSN to a
# VERP address on 25 are timed to their 250. Prints the latencies over time, the longest slow
# session, and the daemon's VmHWM.
#
#   bench/slow-clients.sh [--duration SECONDS]     (default 180)
# BENCH_HERALD=path runs that binary instead of building a release one.
# Needs python3 and 127.0.0.0/8 on lo (Linux has it). Writes a RESULT line to stdout.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=180
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
if [ -z "${BENCH_HERALD:-}" ]; then (cd "$ROOT" && cargo build --release --locked -q); fi
HERALD=${BENCH_HERALD:-$ROOT/target/release/herald}
WORK=$(mktemp -d /tmp/herald-slow.XXXXXX)
SUB=3825 SUBS=3826 INB=3827 SINK=3828
ulimit -n 8192
cat > "$WORK/herald.toml" <<TOML
hostname = "bench.localdomain"
data_dir = "$WORK/data"
[listen]
submission = ["127.0.0.1:$SUB"]
submissions = ["127.0.0.1:$SUBS"]
inbound = ["127.0.0.1:$INB"]
http = ["127.0.0.1:0"]
[[users]]
name = "bench"
password_hash = "$(echo bench-password | "$HERALD" hash-password)"
senders = ["*@example.org"]
[domains."example.org"]
bounce_domain = "bounces.example.org"
[delivery]
relay = "127.0.0.1:$SINK"
TOML
"$HERALD" serve --config "$WORK/herald.toml" > "$WORK/stdout" 2> "$WORK/stderr" &
HPID=$!
cleanup() { kill "$HPID" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 300); do grep -q "herald: ready" "$WORK/stdout" && break; sleep 0.1; done
echo "herald $HPID, default limits, work dir $WORK"
python3 "$ROOT/bench/slow-clients.py" "$HPID" "$SUB" "$INB" "$SINK" bench bench-password "$DURATION"
