#!/usr/bin/env bash
# Install the Debian packages napari needs to run headless (Xvfb + Qt/GL libraries),
# and PortAudio (libportaudio2), which the review's Play call (key l) plays through.
# Does nothing when they are all present; needs root (or sudo) otherwise.
set -euo pipefail
PKGS=(xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libgl1 libegl1
      libgl1-mesa-dri libxkbcommon-x11-0 libxcb-cursor0 libfontconfig1 libdbus-1-3
      libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxkbcommon0
      libportaudio2)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing system packages: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "error: need root to install ${missing[*]} (apt-get install them, then rerun)" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
