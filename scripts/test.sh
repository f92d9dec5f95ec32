#!/usr/bin/env bash
# Runs every check and test of Tributary on a fresh Debian machine: installs what the tests
# need, then formatting, lints and the whole test suite. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# A C toolchain for the C code some crates bundle (zstd). The app's tests run headless and
# need no display libraries.
source scripts/packages.sh
ensure_packages build-essential pkg-config

rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== format"
cargo fmt --check
echo "== lints"
cargo clippy --all-targets --locked -- -D warnings
echo "== tests"
cargo test --all-targets --locked
