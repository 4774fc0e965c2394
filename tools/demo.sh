#!/usr/bin/env bash
# The demo, from a fresh Debian/Ubuntu machine: install Mosquitto and ffmpeg, install edge into a
# venv at .venv/ (the system Python refuses pip, PEP 668), fetch the real models, make the demo
# clip, start a local broker if none is listening on $MQTT_PORT (default 1883), run
# configs/demo.yaml against it, and print the events a subscriber received.
#   PYTHON=python3.12 MQTT_PORT=1884 bash tools/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/venv.sh
source tools/venv.sh

MQTT_PORT=${MQTT_PORT:-1883}
if ! [[ "$MQTT_PORT" =~ ^[0-9]{1,5}$ ]] || ((10#$MQTT_PORT < 1 || 10#$MQTT_PORT > 65535)); then
  echo "demo.sh: MQTT_PORT=$MQTT_PORT: expected a port number 1-65535" >&2
  exit 2
fi
apt_install mosquitto mosquitto-clients ffmpeg

ensure_venv .venv
use_venv .venv
echo "== pip install -e .[all,dev] (into .venv)"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[all,dev]'
echo "== edge models fetch"
.venv/bin/edge models fetch
if [ ! -f demo/demo.mp4 ]; then
  echo "== making demo/demo.mp4"
  .venv/bin/python tools/make_demo_video.py demo/demo.mp4
fi

broker_pid=""
conf=""
if ! (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null; then
  echo "== starting a local Mosquitto on 127.0.0.1:$MQTT_PORT"
  conf=$(mktemp)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$MQTT_PORT" > "$conf"
  mosquitto -c "$conf" >/dev/null 2>&1 &
  broker_pid=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null && break; sleep 0.1; done
fi

received=$(mktemp)
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t 'edge/demo/#' -v > "$received" &
sub_pid=$!
cleanup() {
  kill "$sub_pid" 2>/dev/null || true
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true
  rm -f "$received" ${conf:+"$conf"}
}
trap cleanup EXIT
sleep 0.5

echo "== edge run configs/demo.yaml --set mqtt.port=$MQTT_PORT"
rm -f state/demo/events.jsonl
.venv/bin/edge run configs/demo.yaml --set "mqtt.port=$MQTT_PORT"
sleep 1

echo
echo "== what the MQTT subscriber received (edge/demo/# on 127.0.0.1:$MQTT_PORT)"
cat "$received"
echo
echo "events: $(grep -c '^edge/demo/events ' "$received" || true) on MQTT, $(wc -l < state/demo/events.jsonl) in state/demo/events.jsonl; snapshots in state/demo/snapshots/"
echo "Again by hand: .venv/bin/edge run configs/demo.yaml --set mqtt.port=$MQTT_PORT (or source .venv/bin/activate)"
echo
echo "See what the camera sees and draw zones: .venv/bin/edge preview configs/demo.yaml"
echo "  then open http://127.0.0.1:8090/ here; from your desktop: ssh -L 8090:127.0.0.1:8090 user@board"
echo "  and open http://127.0.0.1:8090/ there (PREVIEW=1 bash tools/demo.sh starts it after the demo)"
if [ "${PREVIEW:-0}" = 1 ]; then
  echo "== edge preview configs/demo.yaml (Ctrl-C to stop)"
  .venv/bin/edge preview configs/demo.yaml
fi
