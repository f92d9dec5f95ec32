#!/usr/bin/env bash
# Times previews on a large input, from the command line and in the app: the reference
# job's node five transforms deep (`expected_revenue` of flows/bench-opportunities.json)
# over a JSON lines file of N opportunities (default 8,400,000: about 5 GB), made once
# under $BENCH_DIR (target/bench) from the demo source, as benches/compare/run.sh makes its
# inputs. Usage: bash benches/preview.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_EC2_METADATA_DISABLED=true
n=${1:-8400000}
work=$(realpath -m "${BENCH_DIR:-target/bench}")
mkdir -p "$work"
cargo build --release --locked
tributary=$PWD/target/release/tributary
input=$work/input-$n/opportunities.jsonl
if [ ! -f "$input" ]; then
  echo "generating $n records…"
  mkdir -p "$(dirname "$input")"
  bash benches/generate.sh "$n" jsonl "$input"
fi
echo "$(du -h "$input" | cut -f1) of JSON lines, $(nproc) cores, $(date -u +%Y-%m-%d)"
# From a cold page cache the first read of the file is the disk's; drop it if allowed.
sync; echo 3 2>/dev/null >/proc/sys/vm/drop_caches || true
times=()
for round in $(seq 10); do
  start=$(date +%s%N)
  "$tributary" preview flows/bench-opportunities.json --node expected_revenue \
    --param "input=$input" >/dev/null
  times+=($(( ($(date +%s%N) - start) / 1000000 )))
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n | tr '\n' ' ')
echo "tributary preview --node expected_revenue, 10 rounds (ms, first from a cold cache): ${times[*]}"
echo "  sorted: $sorted"
# The same node over one Parquet file of 13,000,000 opportunities (about 1 GB).
pq=$work/parquet-13000000
parquet=$pq/opportunities.parquet
if [ ! -f "$parquet" ]; then
  echo "generating the Parquet file…"
  mkdir -p "$pq"
  bash benches/generate.sh 13000000 parquet "$parquet"
fi
python3 -c "
import json, sys
f = json.load(open('flows/bench-opportunities.json'))
f['nodes'][0]['config']['format'] = 'parquet'
json.dump(f, open(sys.argv[1], 'w'))" "$pq/flow.json"
times=()
for round in $(seq 10); do
  start=$(date +%s%N)
  "$tributary" preview "$pq/flow.json" --node expected_revenue --param "input=$parquet" >/dev/null
  times+=($(( ($(date +%s%N) - start) / 1000000 )))
done
echo "the same over $(du -h "$parquet" | cut -f1) of Parquet, 10 rounds (ms): ${times[*]}"
PREVIEW_INPUT=$input cargo bench --bench preview
