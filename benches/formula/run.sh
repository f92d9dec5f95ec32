#!/usr/bin/env bash
# The same three computed fields four ways, on the same Parquet file of demo
# opportunities into the same Parquet folder: no transform (the floor), a Formula, the
# Arithmetic and Merge tasks, and a Script (Rhai, per record). Prints the median of
# ROUNDS interleaved rounds: wall time, CPU (user + sys) and records/s of each flow.
#
#   ROUNDS=3 bash benches/formula/run.sh [RECORDS]     (default: 1000000)
#
# The fields: Weighted = Amount × Probability ÷ 100, Total = Amount + 100,
# Contact = FirstName, a space, LastName.
set -euo pipefail
cd "$(dirname "$0")/../.."
export AWS_EC2_METADATA_DISABLED=true

source scripts/packages.sh
ensure_packages time
cargo build --release --locked -q
tributary=$PWD/target/release/tributary
n=${1:-1000000}
rounds=${ROUNDS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export TRIBUTARY_HOME=$work/home

flow() { # name, transform nodes (JSON, may be empty), edges (JSON)
  cat > "$work/$1.json" <<JSON
{"format": "tributary.flow/1", "name": "$1", "nodes": [
  {"id": "in", "type": "source.file", "config": {"path": "$work/in/*.parquet"}},
  $2
  {"id": "out", "type": "destination.local", "config": {"folder": "$work/out-$1", "format": "parquet"}}],
 "edges": $3}
JSON
}

cat > "$work/generate.json" <<JSON
{"format": "tributary.flow/1", "name": "generate", "nodes": [
  {"id": "crm", "type": "source.demo_crm", "config": {"object": "Opportunity", "records": $n}},
  {"id": "out", "type": "destination.local", "config": {"folder": "$work/in", "format": "parquet"}}],
 "edges": [{"from": "crm", "to": "out"}]}
JSON
"$tributary" run "$work/generate.json" >/dev/null

flow none "" '[{"from": "in", "to": "out"}]'
flow formula '{"id": "f", "type": "transform.formula", "config": {"fields": [
    {"name": "Weighted", "expression": "Amount * Probability / 100"},
    {"name": "Total", "expression": "Amount + 100"},
    {"name": "Contact", "expression": "FirstName & \" \" & LastName"}]}},' \
  '[{"from": "in", "to": "f"}, {"from": "f", "to": "out"}]'
flow tasks '{"id": "a", "type": "transform.arithmetic", "config": {"operations": [
    {"output": "Weighted", "left": "Amount", "operator": "multiply", "right": "Probability"},
    {"output": "Weighted", "left": "Weighted", "operator": "divide", "right": 100},
    {"output": "Total", "left": "Amount", "operator": "add", "right": 100}]}},
  {"id": "m", "type": "transform.merge", "config": {"output": "Contact", "format": "{FirstName} {LastName}"}},' \
  '[{"from": "in", "to": "a"}, {"from": "a", "to": "m"}, {"from": "m", "to": "out"}]'
flow script '{"id": "s", "type": "transform.script", "config": {"fields": {"Weighted": "number", "Total": "number", "Contact": "string"},
    "script": "if record.Amount != () { record.Weighted = record.Amount * record.Probability.to_float() / 100.0; record.Total = record.Amount + 100.0; } record.Contact = record.FirstName + \" \" + record.LastName;"}},' \
  '[{"from": "in", "to": "s"}, {"from": "s", "to": "out"}]'

echo "$n records of demo opportunities ($(du -m "$work"/in/*.parquet | cut -f1) MB of Parquet); $(nproc) cores; $(date -u +%Y-%m-%d)"
for round in $(seq "$rounds"); do
  for f in none formula tasks script; do
    rm -rf "$work/out-$f"
    /usr/bin/time -f "%e %U %S %M" -o "$work/$f.$round" "$tributary" run "$work/$f.json" >/dev/null
  done
done
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
printf "%-8s %8s %8s %12s %10s\n" flow wall_s cpu_s records/s peak_MiB
for f in none formula tasks script; do
  wall=$(for r in $(seq "$rounds"); do cut -d' ' -f1 "$work/$f.$r"; done | median)
  cpu=$(for r in $(seq "$rounds"); do awk '{ print $2 + $3 }' "$work/$f.$r"; done | median)
  peak=$(for r in $(seq "$rounds"); do awk '{ print int($4 / 1024) }' "$work/$f.$r"; done | median)
  printf "%-8s %8s %8s %12.0f %10s\n" "$f" "$wall" "$cpu" "$(awk -v n="$n" -v t="$wall" 'BEGIN { print n / t }')" "$peak"
done
