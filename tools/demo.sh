#!/usr/bin/env bash
# The demo, from a fresh Debian/Ubuntu machine: install edge and Mosquitto, fetch the real
# models, make the demo clip, start a local broker if none is listening on 1883, run
# configs/demo.yaml, and print the events a subscriber received.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
need=()
for pkg in mosquitto mosquitto-clients ffmpeg; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "== apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

echo "== pip install -e .[all,dev]"
"$PY" -m pip install -q --disable-pip-version-check -e '.[all,dev]'
echo "== edge models fetch"
edge models fetch
if [ ! -f demo/demo.mp4 ]; then
  echo "== making demo/demo.mp4"
  "$PY" tools/make_demo_video.py demo/demo.mp4
fi

broker_pid=""
if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  echo "== starting a local Mosquitto on 127.0.0.1:1883"
  conf=$(mktemp)
  printf 'listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n' > "$conf"
  mosquitto -c "$conf" >/dev/null 2>&1 &
  broker_pid=$!
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break; sleep 0.1; done
fi

received=$(mktemp)
mosquitto_sub -h 127.0.0.1 -p 1883 -t 'edge/demo/#' -v > "$received" &
sub_pid=$!
cleanup() {
  kill "$sub_pid" 2>/dev/null || true
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true
}
trap cleanup EXIT
sleep 0.5

echo "== edge run configs/demo.yaml"
rm -f state/demo/events.jsonl
edge run configs/demo.yaml
sleep 1

echo
echo "== what the MQTT subscriber received (edge/demo/#)"
cat "$received"
echo
echo "events: $(grep -c '^edge/demo/events ' "$received" || true) on MQTT, $(wc -l < state/demo/events.jsonl) in state/demo/events.jsonl; snapshots in state/demo/snapshots/"
