#!/usr/bin/env bash
# Run a command with a display: the current one if set, else a virtual one (Xvfb).
set -euo pipefail
if [ -n "${DISPLAY:-}" ]; then exec "$@"; fi
exec xvfb-run -a -s "-screen 0 1600x1000x24" "$@"
