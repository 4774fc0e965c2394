#!/usr/bin/env bash
# The test command (README and CI run exactly this): install what the tests need, fetch the
# pinned models, lint, type-check, run the test suite. Safe to run again; it reuses caches.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=()
  # mosquitto: the tests' broker; ffmpeg: encodes the demo clip; python3-gi + GStreamer's RTSP
  # server: a real RTSP server for the reconnect test; openssl: a throwaway CA for the TLS tests;
  # systemd: systemd-analyze verify/security for the unit files.
  for pkg in mosquitto mosquitto-clients ffmpeg openssl systemd python3-gi gir1.2-gst-rtsp-server-1.0 \
      gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "== apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

echo "== pip install -e .[all,dev]"
"$PY" -m pip install -q --disable-pip-version-check -e '.[all,dev]'

export EDGE_CACHE_DIR=${EDGE_CACHE_DIR:-$PWD/.cache/wheels}
echo "== edge models fetch"
edge models fetch

echo "== ruff"
"$PY" -m ruff check edge tests tools
"$PY" -m ruff format --check edge tools
echo "== mypy --strict"
"$PY" -m mypy

echo "== pytest"
"$PY" -m pytest -q "$@"
