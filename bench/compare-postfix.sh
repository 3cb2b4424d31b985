#!/usr/bin/env bash
# Herald vs Postfix on loopback, interleaved, with ../shared/bench/smtp-bench.sh.
#
#   smtp-source --> MTA under test --> sink on 127.0.0.1:2526
#
# Postfix listens on 127.0.0.1:2525 (shared/bench/postfix config), Herald's submission
# listener on 127.0.0.1:3525 with trusted_networks = 127.0.0.0/8 (no TLS/AUTH, like Postfix's
# mynetworks) and delivery.relay = 127.0.0.1:2526. Each round runs both MTAs one after the
# other (alternating who goes first), after both queues are empty.
#
# Usage: bench/compare-postfix.sh [--rounds N] [--matrix "MSGS SESS SIZE;..."] [--out FILE]
# Needs root (installs and starts Postfix), python3, ss. Writes RESULT lines to --out
# (default bench/results.txt) and prints a median summary.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HARNESS=${HARNESS:-$ROOT/../shared/bench/smtp-bench.sh}
PF_CONF=${PF_CONF:-$ROOT/../shared/bench/postfix}
ROUNDS=3
MATRIX="10000 20 4096;10000 50 65536"
OUT=$ROOT/bench/results.txt
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2;;
    --matrix) MATRIX=$2; shift 2;;
    --out) OUT=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
[ -x "$HARNESS" ] || [ -f "$HARNESS" ] || { echo "harness not found: $HARNESS" >&2; exit 2; }

# --- Postfix --------------------------------------------------------------------------------
if ! command -v smtp-source >/dev/null || ! command -v postfix >/dev/null; then
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >/dev/null
fi
install -m 0644 "$PF_CONF/main.cf" /etc/postfix/main.cf
install -m 0644 "$PF_CONF/master.cf" /etc/postfix/master.cf
postfix stop >/dev/null 2>&1 || true
postfix start
postfix_empty() { postqueue -p 2>/dev/null | grep -q "Mail queue is empty"; }

# --- Herald ---------------------------------------------------------------------------------
(cd "$ROOT" && cargo build --release --locked -q)
HERALD=$ROOT/target/release/herald
WORK=$(mktemp -d /tmp/herald-bench.XXXXXX)
cat > "$WORK/herald.toml" <<TOML
hostname = "bench.localdomain"
data_dir = "$WORK/data"
trusted_networks = ["127.0.0.0/8"]
[listen]
submission = ["127.0.0.1:3525"]
submissions = ["127.0.0.1:0"]
inbound = ["127.0.0.1:0"]
http = ["127.0.0.1:0"]
[[users]]
name = "bench"
password_hash = "$(echo bench-password | "$HERALD" hash-password)"
senders = ["*@src.bench.test"]
[delivery]
relay = "127.0.0.1:2526"
[delivery.rate]
default = "1000000/min"
[privacy]
log_addresses = false
TOML
HERALD_LOG=warn "$HERALD" serve --config "$WORK/herald.toml" > "$WORK/stdout" 2> "$WORK/stderr" &
HPID=$!
cleanup() { kill "$HPID" 2>/dev/null || true; wait "$HPID" 2>/dev/null || true; postfix stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
for _ in $(seq 100); do grep -q "herald: ready" "$WORK/stdout" && break; sleep 0.1; done
grep -q "herald: ready" "$WORK/stdout" || { cat "$WORK/stderr"; exit 1; }
herald_empty() { [ "$("$HERALD" queue ls --json --config "$WORK/herald.toml" | tr -d ' \n')" = "[]" ]; }

wait_empty() {
  local check=$1
  for _ in $(seq 600); do "$check" && return 0; sleep 0.5; done
  echo "queue did not drain ($check)" >&2; return 1
}

run_one() {
  local mta=$1 msgs=$2 sess=$3 size=$4 port
  if [ "$mta" = postfix ]; then port=2525; wait_empty postfix_empty; else port=3525; wait_empty herald_empty; fi
  bash "$HARNESS" --target "127.0.0.1:$port" --sink-port 2526 --messages "$msgs" --sessions "$sess" \
    --size "$size" --label "$mta" | tail -1 | tee -a "$OUT"
}

: > "$OUT"
IFS=';' read -ra CASES <<< "$MATRIX"
for round in $(seq "$ROUNDS"); do
  for c in "${CASES[@]}"; do
    read -r msgs sess size <<< "$c"
    if [ $((round % 2)) -eq 1 ]; then order="postfix herald"; else order="herald postfix"; fi
    for mta in $order; do
      echo "# round $round: $mta $msgs messages, $sess sessions, $size bytes" >&2
      run_one "$mta" "$msgs" "$sess" "$size" || echo "RESULT failed label=$mta messages=$msgs sessions=$sess size=$size" >> "$OUT"
    done
  done
done

python3 "$ROOT/bench/summarize.py" "$OUT"
