#!/usr/bin/env bash
# Loads the same CSV of demo opportunities into PostgreSQL twice: with `psql \copy` (the
# database's own bulk path, the floor) and with a Tributary flow (file → destination.postgres,
# insert into a new table), and prints records/s and Tributary's peak memory.
#
#   bash benches/postgres/run.sh [RECORDS]     (default: 1000000)
#
# Starts a throwaway server as the tests do (scripts/postgres.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
export AWS_EC2_METADATA_DISABLED=true

source scripts/packages.sh
ensure_packages postgresql time
source scripts/postgres.sh
start_test_postgres
cargo build --release --locked -q
tributary=$PWD/target/release/tributary
n=${1:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"; stop_test_postgres' EXIT
export TRIBUTARY_HOME=$work/home TRIBUTARY_VAULT_PASSPHRASE=bench
host=${TRIBUTARY_TEST_POSTGRES%:*} port=${TRIBUTARY_TEST_POSTGRES#*:}
export PGPASSWORD=tributary-test
psql() { command psql -q -h "$host" -p "$port" -U tributary -d postgres "$@"; }

cat > "$work/generate.json" <<JSON
{"format": "tributary.flow/1", "name": "generate", "nodes": [
  {"id": "crm", "type": "source.demo_crm", "config": {"object": "Opportunity", "records": $n}},
  {"id": "out", "type": "destination.local", "config": {"folder": "$work/csv", "format": "csv"}}],
 "edges": [{"from": "crm", "to": "out"}]}
JSON
"$tributary" run "$work/generate.json" >/dev/null
csv=$(ls "$work"/csv/*.csv)
echo "$n records, $(du -m "$csv" | cut -f1) MB of CSV; $(nproc) cores; $(date -u +%Y-%m-%d)"

# The table both load: the types Tributary gives the same records.
cat > "$work/load.json" <<JSON
{"format": "tributary.flow/1", "name": "load", "nodes": [
  {"id": "csv", "type": "source.file", "config": {"path": "$csv"}},
  {"id": "db", "type": "destination.postgres", "config": {"connection": "bench", "table": "tributary_load"}}],
 "edges": [{"from": "csv", "to": "db"}]}
JSON
"$tributary" connection add bench --connector postgres --auth basic \
  --set host="$host" --set port="$port" --set database=postgres --set username=tributary >/dev/null <<<"tributary-test"

/usr/bin/time -f "%e s, peak %M KiB" -o "$work/tributary.time" "$tributary" run "$work/load.json" >/dev/null
psql -c "CREATE TABLE psql_load (LIKE tributary_load)"
/usr/bin/time -f "%e s" -o "$work/psql.time" \
  bash -c "PGPASSWORD=tributary-test command psql -q -h $host -p $port -U tributary -d postgres -c \"\\\\copy psql_load FROM '$csv' (FORMAT csv, HEADER)\""
rows=$(psql -At -c "SELECT (SELECT count(*) FROM tributary_load) || ' / ' || (SELECT count(*) FROM psql_load)")
echo "rows loaded (tributary / psql): $rows"
rate() { awk -v n="$n" -v t="$1" 'BEGIN { printf "%.0f", n / t }'; }
t_trib=$(cut -d' ' -f1 "$work/tributary.time"); t_psql=$(cut -d' ' -f1 "$work/psql.time")
echo "tributary: $(cat "$work/tributary.time") → $(rate "$t_trib") records/s"
echo "psql \\copy: $(cat "$work/psql.time") → $(rate "$t_psql") records/s"
