#!/usr/bin/env bash
# A 100,000-member list: import time, the post's 250 latency, time until every copy reached a
# counting sink, and Herald's peak memory (VmHWM).
#
#   bench/list-scale.sh [--members N]
# Needs python3. Writes a RESULT line to stdout.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MEMBERS=100000
while [ $# -gt 0 ]; do
  case "$1" in
    --members) MEMBERS=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
(cd "$ROOT" && cargo build --release --locked -q)
HERALD=$ROOT/target/release/herald
WORK=$(mktemp -d /tmp/herald-list.XXXXXX)
SINK_PORT=2536
cat > "$WORK/herald.toml" <<TOML
hostname = "bench.localdomain"
data_dir = "$WORK/data"
trusted_networks = ["127.0.0.0/8"]
[listen]
submission = ["127.0.0.1:3725"]
submissions = ["127.0.0.1:0"]
inbound = ["127.0.0.1:0"]
http = ["127.0.0.1:0"]
[[users]]
name = "bench"
password_hash = "$(echo bench-password | "$HERALD" hash-password)"
senders = ["*@src.bench.test"]
[delivery]
relay = "127.0.0.1:$SINK_PORT"
[delivery.rate]
default = "1000000/min"
[[lists]]
id = "big"
address = "big@src.bench.test"
name = "Big List"
kind = "announce"
posters = ["owner@src.bench.test"]
TOML
python3 - "$WORK/members.csv" "$MEMBERS" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("email,name\n")
    for i in range(int(sys.argv[2])):
        f.write(f"m{i}@d{i % 50}.list.bench.test,Member {i}\n")
PY
"$HERALD" serve --config "$WORK/herald.toml" > "$WORK/stdout" 2> "$WORK/stderr" &
HPID=$!
SPID=
cleanup() { kill "$HPID" 2>/dev/null || true; [ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do grep -q "herald: ready" "$WORK/stdout" && break; sleep 0.1; done

start=$(date +%s.%N)
"$HERALD" list import big "$WORK/members.csv" --consent "benchmark" --config "$WORK/herald.toml" --json > "$WORK/import.json"
import_s=$(python3 -c "import time; print(f'{time.time() - $start:.2f}')")

python3 "$ROOT/bench/count-sink.py" "$SINK_PORT" "$MEMBERS" "$WORK/sink-ready" > "$WORK/sink.out" &
SPID=$!
for _ in $(seq 100); do [ -f "$WORK/sink-ready" ] && break; sleep 0.1; done

post_start=$(python3 - <<'PY'
import smtplib, time
t0 = time.time()
s = smtplib.SMTP("127.0.0.1", 3725)
s.sendmail("owner@src.bench.test", ["big@src.bench.test"],
           "From: owner@src.bench.test\r\nTo: big@src.bench.test\r\nSubject: bench post\r\n\r\n" + "x" * 2000 + "\r\n")
t1 = time.time()
s.quit()
print(f"{t0:.3f} {t1 - t0:.3f}")
PY
)
read -r t0 accept_s <<< "$post_start"
wait "$SPID"; SPID=
read -r received first last <<< "$(tr ' ' '\n' < "$WORK/sink.out" | cut -d= -f2 | tr '\n' ' ')"
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$HPID/status")
all_s=$(python3 -c "print(f'{$last - $t0:.1f}')")
rate=$(python3 -c "print(f'{$received / ($last - $t0):.0f}')")
echo "RESULT members=$MEMBERS import_s=$import_s post_250_s=$accept_s all_copies_s=$all_s copies=$received copies_per_s=$rate herald_hwm_kb=$hwm"
