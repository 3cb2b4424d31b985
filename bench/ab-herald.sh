#!/usr/bin/env bash
# Two Herald binaries side by side (A/B), interleaved, through ../shared/bench/smtp-bench.sh:
# the same setup as bench/compare-postfix.sh's Herald, one daemon per binary (each its own data
# dir and port), runs alternating which goes first. For telling whether a change made Herald
# slower, without Postfix's own variance in the ratio.
#
# Usage: bench/ab-herald.sh A_BINARY B_BINARY [--rounds N] [--matrix "MSGS SESS SIZE;..."] [--out FILE]
# Writes RESULT lines labelled a and b to --out (default /tmp/ab-results.txt) and prints the
# median summary (bench/summarize.py).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HARNESS=${HARNESS:-$ROOT/../shared/bench/smtp-bench.sh}
[ $# -ge 2 ] || { sed -n 2,9p "$0" >&2; exit 2; }
A=$1 B=$2; shift 2
ROUNDS=3
MATRIX="10000 20 4096"
OUT=/tmp/ab-results.txt
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2;;
    --matrix) MATRIX=$2; shift 2;;
    --out) OUT=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done

WORK=$(mktemp -d /tmp/herald-ab.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

start() {
  local label=$1 bin=$2 port=$3 dir=$WORK/$1
  mkdir -p "$dir"
  cat > "$dir/herald.toml" <<TOML
hostname = "bench.localdomain"
data_dir = "$dir/data"
trusted_networks = ["127.0.0.0/8"]
[listen]
submission = ["127.0.0.1:$port"]
submissions = ["127.0.0.1:0"]
inbound = ["127.0.0.1:0"]
http = ["127.0.0.1:0"]
[[users]]
name = "bench"
password_hash = "$(echo bench-password | "$bin" hash-password)"
senders = ["*@src.bench.test"]
[delivery]
relay = "127.0.0.1:2526"
[delivery.rate]
default = "1000000/min"
[privacy]
log_addresses = false
TOML
  HERALD_LOG=warn "$bin" serve --config "$dir/herald.toml" > "$dir/stdout" 2> "$dir/stderr" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q "herald: ready" "$dir/stdout" && break; sleep 0.1; done
  grep -q "herald: ready" "$dir/stdout" || { cat "$dir/stderr"; exit 1; }
}
start a "$A" 3525
start b "$B" 3526

empty() {
  local bin=$1 label=$2
  for _ in $(seq 600); do
    [ "$("$bin" queue ls --json --config "$WORK/$label/herald.toml" | tr -d ' \n')" = "[]" ] && return 0
    sleep 0.5
  done
  echo "queue of $label did not drain" >&2; return 1
}

: > "$OUT"
IFS=';' read -ra CASES <<< "$MATRIX"
for round in $(seq "$ROUNDS"); do
  for c in "${CASES[@]}"; do
    read -r msgs sess size <<< "$c"
    if [ $((round % 2)) -eq 1 ]; then order="a b"; else order="b a"; fi
    for label in $order; do
      if [ "$label" = a ]; then bin=$A port=3525; else bin=$B port=3526; fi
      empty "$bin" "$label"
      echo "# round $round: $label $msgs messages, $sess sessions, $size bytes" >&2
      bash "$HARNESS" --target "127.0.0.1:$port" --sink-port 2526 --messages "$msgs" \
        --sessions "$sess" --size "$size" --label "$label" | tail -1 | tee -a "$OUT"
    done
  done
done
python3 "$ROOT/bench/summarize.py" "$OUT" || true
