#!/usr/bin/env bash
# Writes RECORDS synthetic opportunities (the demo source: seeded, the same records on every
# machine) to one FILE as `jsonl` or `parquet`, with the release binary; the benchmarks'
# inputs. Usage: bash benches/generate.sh RECORDS FORMAT FILE
set -euo pipefail
records=$1 format=$2 file=$(realpath -m "$3")
cd "$(dirname "$0")/.."
work=$(mktemp -d "$(dirname "$file")/.generate-XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 -c "
import json, sys
flow = json.load(open('benches/compare/generate.json'))
flow['nodes'][0]['config']['records'] = int(sys.argv[1])
flow['nodes'][1]['config']['format'] = sys.argv[2]
json.dump(flow, open(sys.argv[3], 'w'), indent=2)" "$records" "$format" "$work/generate.json"
target/release/tributary run "$work/generate.json" --param output="$work/out" >/dev/null
mv "$work"/out/part-*."$format" "$file"
