#!/usr/bin/env bash
# Runs every check and test of Tributary on a fresh Debian machine: installs what the tests
# need, then formatting, lints and the whole test suite. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# A C toolchain for the C code some crates bundle (zstd). The app's tests run headless and
# need no display libraries.
# No test may reach for the EC2 instance metadata address: every AWS client here is local.
export AWS_EC2_METADATA_DISABLED=true

# A build from scratch with the test binaries takes about 16 GB of disk: say so up front
# rather than fail later with a linker's "No space left on device".
free_kb=$(df -Pk . | awk 'NR == 2 {print $4}')
if [ "$free_kb" -lt $((16 * 1024 * 1024)) ]; then
  echo "warning: $((free_kb / 1024 / 1024)) GB free here; the build and tests need about 16 GB" >&2
fi

source scripts/packages.sh
ensure_packages build-essential pkg-config python3-venv
# The kill-during-commit tests stop a run at its K-th rename with strace's fault injection.
ensure_packages strace
# The connection tests log in through a real headless browser.
ensure_packages chromium
export TRIBUTARY_TEST_CHROMIUM=/usr/bin/chromium

# The S3 tests start an S3-compatible server on loopback (moto's), from a virtualenv of its
# own. 5.1 is the newest line whose CompleteMultipartUpload answer strict clients can parse.
# DuckDB reads the local catalogs; kubernetes-validate checks the exported Kubernetes objects
# against Kubernetes' own schemas.
venv=target/test-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check 'moto[server]==5.1.22' 'duckdb==2.0.1' \
  'kubernetes-validate==1.37.0'
export TRIBUTARY_TEST_PYTHON=$PWD/$venv/bin/python

# The Airflow export's tests load the DAG files into Apache Airflow itself and run one, from
# a virtualenv of its own: Airflow pins many packages that moto's would clash with.
airflow_venv=target/airflow-venv
[ -x "$airflow_venv/bin/python" ] || python3 -m venv "$airflow_venv"
"$airflow_venv/bin/pip" install -q --disable-pip-version-check 'apache-airflow==3.3.2'
export TRIBUTARY_TEST_AIRFLOW=$PWD/$airflow_venv/bin

# The PostgreSQL destination's tests load a real server, started here on a loopback port
# in a temporary folder and stopped when this script ends.
ensure_packages postgresql openssl
source scripts/postgres.sh
start_test_postgres

rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== format"
cargo fmt --check
echo "== lints"
cargo clippy --all-targets --locked -- -D warnings
echo "== tests"
cargo test --all-targets --locked
# The suites that keep run state (history, watermarks, commits, the service's activations)
# once more with the state in PostgreSQL, each test in a schema of its own; the Airflow
# suite among them runs its DAG on a worker sharing that state.
echo "== the same suites with the run state in PostgreSQL"
TRIBUTARY_TEST_STATE=postgres cargo test --locked --test runs --test schedule --test serve --test faults \
  --test partitions \
  --test airflow
