#!/usr/bin/env bash
# Writes about 1 GB of Parquet to an S3-compatible server on loopback (moto's, as the tests
# use) and prints MB/s and peak memory, beside the same flow into a local folder.
#
#   bash benches/s3/run.sh [RECORDS]      (default: 14000000, about 1 GB of Parquet)
set -euo pipefail
cd "$(dirname "$0")/../.."

source scripts/packages.sh
ensure_packages time python3-venv
records=${1:-14000000}
venv=target/test-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]==5.1.22'
cargo build --release --locked
tributary=$PWD/target/release/tributary
work=$(mktemp -d)
trap 'exec 3>&-; rm -rf "$work"' EXIT

# The server lives as long as file descriptor 3 stays open.
mkfifo "$work/server-in"
"$venv/bin/python" tests/support/s3_server.py <"$work/server-in" >"$work/server.json" 2>/dev/null &
exec 3>"$work/server-in"
until [ -s "$work/server.json" ]; do sleep 0.2; done
endpoint=$("$venv/bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['endpoint'])" "$work/server.json")
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_ENDPOINT_URL=$endpoint
"$venv/bin/python" -c "import boto3; boto3.client('s3').create_bucket(Bucket='bench')"

flow() {
  cat <<JSON
{"format": "tributary.flow/1", "name": "s3 bench", "nodes": [
  {"id": "crm", "type": "source.demo_crm", "position": [0, 0],
   "config": {"object": "Opportunity", "records": $records}},
  {"id": "out", "type": "$1", "position": [300, 0], "config": $2}],
 "edges": [{"from": "crm", "to": "out"}]}
JSON
}
flow destination.s3 '{"bucket": "bench", "prefix": "opportunities", "format": "parquet"}' >"$work/s3.json"
flow destination.local "{\"folder\": \"$work/local\", \"format\": \"parquet\"}" >"$work/local.json"

echo "$records demo Opportunity records to Parquet; $(nproc) cores, $(date -u +%Y-%m-%d)"
printf '%-22s %10s %8s %10s %12s\n' destination MB seconds MB/s "peak RSS MB"
for target in local s3; do
  /usr/bin/time -f "%e %M" -o "$work/time" "$tributary" run "$work/$target.json" --json >"$work/record.json"
  read -r seconds kib <"$work/time"
  bytes=$("$venv/bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['bytes_written'])" "$work/record.json")
  awk -v t="$target" -v b="$bytes" -v s="$seconds" -v k="$kib" \
    'BEGIN { printf "%-22s %10.0f %8.1f %10.1f %12.0f\n", t, b/1e6, s, b/1e6/s, k/1024 }'
done
