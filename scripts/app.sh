#!/usr/bin/env bash
# Opens the Tributary app on a fresh Debian machine: installs the libraries its window needs
# (OpenGL, EGL, X11 keyboard), then builds and starts it on the demo flow, which needs no
# account and no network. Other arguments are passed on: `bash scripts/app.sh flows/x.json`.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/packages.sh
ensure_packages libgl1 libegl1 libgl1-mesa-dri libxkbcommon-x11-0 libxcursor1 libxrandr2 libxi6 xdg-utils

exec cargo run --release --locked -- gui "${@:-flows/demo-opportunities-to-lake.json}"
