#!/usr/bin/env bash
# Opens the Tributary app on a fresh Debian machine: installs the libraries its window needs
# (OpenGL, EGL, X11 keyboard), then builds and starts it. It opens on the demo flow, which
# needs no account and no network. Arguments are passed on: `bash scripts/app.sh flows/x.json`.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libgl1 libegl1 libgl1-mesa-dri libxkbcommon-x11-0 libxcursor1 libxrandr2 libxi6 xdg-utils)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

exec cargo run --release --locked -- gui "$@"
