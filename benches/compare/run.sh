#!/usr/bin/env bash
# Runs the reference job with Tributary, DuckDB, polars, pandas and Miller on the same input,
# one after another, checks that their outputs agree, and prints records/s and peak memory
# for each with the ratio to Tributary.
#
#   bash benches/compare/run.sh [RECORDS ...]      (default: 1000000)
#   ROUNDS=3 bash benches/compare/run.sh 1000000   (every tool three times, medians shown)
#   TOOLS="tributary duckdb" bash benches/compare/run.sh 1000000   (only these tools)
#   TRIBUTARY=/path/to/tributary bash benches/compare/run.sh   (another build of Tributary)
#
# Every run's user and system CPU seconds are shown beside its wall time: on a shared machine
# they are steadier, and their sum over the wall time tells how many cores a tool kept busy.
#
# On a shared machine one run of a tool can be 20% off its usual time; with several rounds
# each round runs every tool once, so a slow spell hits all of them alike.
# Inputs are generated once per record count (seeded: the same records everywhere) under
# target/bench, or $BENCH_DIR; the Python tools live in a virtualenv there.
set -euo pipefail
cd "$(dirname "$0")/../.."

source scripts/packages.sh
ensure_packages miller time python3-venv

work=${BENCH_DIR:-target/bench}
mkdir -p "$work"
work=$(realpath "$work")
venv=$work/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check duckdb polars pandas pyarrow
if [ -z "${TRIBUTARY:-}" ]; then
  cargo build --release --locked
fi
tributary=$(realpath "${TRIBUTARY:-target/release/tributary}")

version() { "$venv/bin/python" -c "import $1; print($1.__version__)"; }
echo "tributary $("$tributary" --version | cut -d' ' -f2), duckdb $(version duckdb), polars $(version polars), pandas $(version pandas), pyarrow $(version pyarrow), $(mlr --version)"
echo "$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(date -u +%Y-%m-%d)"

for n in "${@:-1000000}"; do
  input=$work/input-$n/opportunities.jsonl
  if [ ! -f "$input" ]; then
    echo "generating $n records…"
    mkdir -p "$(dirname "$input")"
    bash benches/generate.sh "$n" jsonl "$input"
  fi
  # Every tool reads the input from the page cache, the first one too.
  cat "$input" >/dev/null
  results=$work/results-$n.tsv
  : >"$results"
  for round in $(seq "${ROUNDS:-1}"); do
    for tool in ${TOOLS:-tributary duckdb polars pandas miller}; do
      out=$work/out-$n/$tool
      rm -rf "$out"
      mkdir -p "$(dirname "$out")"
      case $tool in
        tributary) cmd=("$tributary" run flows/bench-opportunities.json --param "input=$input" --param "output=$out") ;;
        duckdb)
          sql=$(sed -e "s|@INPUT@|$input|" -e "s|@OUTPUT@|$out|" benches/compare/job.sql)
          cmd=("$venv/bin/python" -c "import duckdb, sys; duckdb.sql(sys.argv[1])" "$sql") ;;
        polars) cmd=("$venv/bin/python" benches/compare/job_polars.py "$input" "$out") ;;
        pandas) cmd=("$venv/bin/python" benches/compare/job_pandas.py "$input" "$out") ;;
        miller) cmd=(bash benches/compare/job_miller.sh "$input" "$out") ;;
      esac
      sync
      if /usr/bin/time -f "%e %M %U %S" -o "$work/time" "${cmd[@]}" >/dev/null 2>"$work/$tool.log"; then
        read -r seconds kib user system <"$work/time"
        cpu=$(awk "BEGIN { print $user + $system }")
        figures=$("$venv/bin/python" benches/compare/check.py "$out" 2>>"$work/$tool.log") ||
          figures='{"unreadable output": true}'
      else
        seconds=0 kib=0 cpu=0 figures='{"failed": true}'
        echo "$tool failed; see $work/$tool.log"
      fi
      printf '%s\t%s\t%s\t%s\t%s\n' "$tool" "$seconds" "$kib" "$cpu" "$figures" >>"$results"
    done
  done
  "$venv/bin/python" - "$n" "$results" <<'PY'
import json, statistics, sys
n = int(sys.argv[1])
runs = {}
for line in open(sys.argv[2]):
    tool, seconds, kib, cpu, figures = line.rstrip("\n").split("\t")
    runs.setdefault(tool, []).append((float(seconds), int(kib), float(cpu), json.loads(figures)))
# A tool's medians; its figures only when every round agrees with itself.
rows = []
for tool, results in runs.items():
    figures = [f for *_, f in results]
    rows.append((
        tool,
        statistics.median(r[0] for r in results),
        int(statistics.median(r[1] for r in results)),
        statistics.median(r[2] for r in results),
        figures[0] if all(f == figures[0] for f in figures) else {"rounds disagree": figures},
    ))
base = rows[0]
rounds = len(runs["tributary"])
print(f"\n{n:,} records" + (f", median of {rounds} rounds" if rounds > 1 else ""))
print("| tool | seconds | records/s | Tributary is faster by | CPU seconds | cores busy | peak RSS | output agrees |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for tool, seconds, kib, cpu, figures in rows:
    rate = n / seconds if seconds else 0
    ratio = f"{seconds / base[1]:.2f}×" if seconds and tool != "tributary" else ""
    busy = f"{cpu / seconds:.2f}" if seconds else ""
    agrees = "✔" if figures == base[4] else f"✘ {figures}"
    print(f"| {tool} | {seconds:.2f} | {rate / 1e6:.2f} M | {ratio} | {cpu:.2f} | {busy} | {kib / 1024:.0f} MiB | {agrees} |")
print(f"\nTributary's figures: {json.dumps(base[4])}")
PY
done
