#!/usr/bin/env bash
# `tributary serve` with 200 active scheduled flows: the CPU and memory it takes while it
# waits, and how soon after its time a due run starts.
#
#   bash benches/serve/run.sh [FLOWS] [SECONDS]     (default: 200 flows, 60 s of idling)
#
# 199 flows run once a day at 03:00 UTC (not during the measurement); one runs every
# minute, so the measurement also sees due runs start. The CPU figure is the service's
# user+system time over the idle window, from /proc.
set -euo pipefail
cd "$(dirname "$0")/../.."

flows=${1:-200}
seconds=${2:-60}
export AWS_EC2_METADATA_DISABLED=true
cargo build --release --locked
tributary=$PWD/target/release/tributary
work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
export TRIBUTARY_HOME=$work/home
mkdir -p "$work/flows/data"
cp flows/data/orders.csv "$work/flows/data/"

for i in $(seq 1 "$flows"); do
  expression='cron(0 3 * * ? *)'
  [ "$i" = 1 ] && expression='rate(1 minutes)'
  cat >"$work/flows/flow-$i.json" <<JSON
{
  "format": "tributary.flow/1",
  "name": "flow $i",
  "trigger": {"type": "schedule", "expression": "$expression"},
  "nodes": [
    {"id": "orders", "type": "source.file", "config": {"path": "data/orders.csv"}},
    {"id": "out", "type": "destination.local", "config": {"folder": "out/$i", "format": "jsonl"}}
  ],
  "edges": [{"from": "orders", "to": "out"}]
}
JSON
  "$tributary" activate "$work/flows/flow-$i.json" >/dev/null
done

"$tributary" serve --flows "$work/flows" --listen 127.0.0.1:0 2>"$work/serve.log" &
pid=$!
sleep 5
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
before=$(cpu)
sleep "$seconds"
after=$(cpu)
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
hwm_kib=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
kill -TERM "$pid"
wait "$pid" || true

python3 - "$before" "$after" "$ticks" "$seconds" "$rss_kib" "$hwm_kib" "$flows" <<'PY'
import json, subprocess, sys, datetime
before, after, ticks, seconds, rss, hwm, flows = sys.argv[1:]
cpu = (float(after) - float(before)) / float(ticks)
print(f"{flows} active flows, {seconds} s idle: {cpu:.2f} CPU-seconds "
      f"= {100 * cpu / float(seconds):.2f}% of one core; "
      f"RSS {int(rss) / 1024:.1f} MiB (peak {int(hwm) / 1024:.1f} MiB)")
runs = json.loads(subprocess.check_output(["target/release/tributary", "runs", "--json"]))
lates = []
for run in runs:
    trigger = run["trigger"]
    if not trigger.startswith("schedule: due "):
        continue
    due = datetime.datetime.fromisoformat(trigger.removeprefix("schedule: due "))
    started = datetime.datetime.fromisoformat(run["started_at"].replace("Z", "+00:00"))
    lates.append((started - due).total_seconds())
if lates:
    print(f"{len(lates)} due runs started {min(lates) * 1000:.0f}–{max(lates) * 1000:.0f} ms after their time")
PY
