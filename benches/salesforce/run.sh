#!/usr/bin/env bash
# Pulls every record of an Opportunity object from a Salesforce org on loopback (the tests'
# server, which speaks the REST API and Bulk API 2.0) into local Parquet, once through REST
# pagination (2,000 records a page) and once through a Bulk API 2.0 query job (50,000
# records a result set), and prints records/s and peak memory for each.
#
#   bash benches/salesforce/run.sh [RECORDS]      (default: 200000; at most 216000)
#
# The server is Python and builds each page as it is asked: the figures are what Tributary
# reaches against it, a floor for what it reaches against Salesforce, whose pages come
# from elsewhere.
set -euo pipefail
cd "$(dirname "$0")/../.."

source scripts/packages.sh
ensure_packages time
records=${1:-200000}
cargo build --release --locked
tributary=$PWD/target/release/tributary
work=$(mktemp -d)
trap 'exec 3>&-; rm -rf "$work"' EXIT

# The server lives as long as file descriptor 3 stays open.
mkfifo "$work/server-in"
python3 tests/support/salesforce_server.py --records "$records" <"$work/server-in" >"$work/server.json" &
exec 3>"$work/server-in"
until [ -s "$work/server.json" ]; do sleep 0.2; done
read -r url secret < <(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['url'], d['client_secret'])" "$work/server.json")
python3 -c "import sys, urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1] + '/test/control', data=b'{\"page_size\": 2000, \"result_size\": 50000}', method='POST')).read()" "$url"

export TRIBUTARY_HOME=$work/home TRIBUTARY_VAULT_PASSPHRASE=bench
echo "$secret" | "$tributary" connection add org --connector salesforce --auth oauth2_client_credentials \
  --set "login_url=$url" --set client_id=sf-test-client >/dev/null
"$tributary" connection login org >/dev/null

for api in rest bulk; do
  cat >"$work/$api.json" <<JSON
{"format": "tributary.flow/1", "name": "salesforce bench $api", "nodes": [
  {"id": "sf", "type": "source.salesforce", "position": [0, 0],
   "config": {"connection": "org", "object": "Opportunity", "api": "$api"}},
  {"id": "out", "type": "destination.local", "position": [300, 0],
   "config": {"folder": "$work/out-$api", "format": "parquet"}}],
 "edges": [{"from": "sf", "to": "out"}]}
JSON
  /usr/bin/time -f "%e %U %S %M" -o "$work/time-$api" "$tributary" run "$work/$api.json" --json >"$work/record-$api.json"
  read -r seconds user system kib <"$work/time-$api"
  written=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['records_written'])" "$work/record-$api.json")
  python3 -c "import sys; n, s, k, api, cpu = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5]) + float(sys.argv[6]); print(f'{api:<5} {n:>9,} records  {s:6.1f} s  {n / s:>9,.0f} records/s  peak RSS {k / 1024:6.0f} MiB  (Tributary busy {cpu:.1f} s of CPU)')" \
    "$written" "$seconds" "$kib" "$api" "$user" "$system"
done
