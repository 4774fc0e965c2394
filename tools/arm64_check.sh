#!/usr/bin/env bash
# The Raspberry Pi path, checked on an x86 machine under qemu-user emulation (.ci/run runs this
# after tools/test.sh). As root, on Debian or Ubuntu:
#
#   bash tools/arm64_check.sh
#
# 1. debootstrap  a Debian bookworm arm64 root (debootstrap --arch=arm64), run through
#                 qemu-user-static + binfmt-support with QEMU_CPU=cortex-a72 (a Pi 4's cores).
#                 Kept at $EDGE_ARM64_ROOT (default /var/cache/edge-arm64/bookworm) and made again
#                 only when it is missing or broken; pip's and edge's download caches are kept
#                 beside it ($EDGE_ARM64_CACHE, default /var/cache/edge-arm64/cache).
# 2. install      a copy of this checkout into the root's /usr/src/edge, then `tools/install.sh`
#                 inside the root, as on a Pi (board arm, extras litert, /opt/edge/venv, pinned
#                 models fetched). A cached root keeps /opt/edge, so later runs take install.sh's
#                 update path; EDGE_ARM64_FRESH=1 runs `install.sh --uninstall --purge` first.
# 3. probe        `edge probe --model blazepose --json` on a root that reads like a Pi 4 (regular
#                 files at /proc/cpuinfo and /proc/device-tree/model; procfs is not mounted):
#                 board Raspberry Pi, Arm CPU with asimd, runner litert for the Arm reason.
# 4. golden       BlazeFace and BlazePose on LiteRT in the root against this machine's .venv
#                 (x86): raw tensors on the same input tensor, preprocessing, and decoded boxes,
#                 scores and keypoints, within tools/arm64/golden.py's TOLERANCES.
# 5. run          `edge run tools/arm64/small.yaml` (runner: auto) on a 6 s, 640x360, 5 fps cut of
#                 the demo clip, to its end, with a Mosquitto broker on this machine: the events in
#                 <state_dir>/events.jsonl equal x86's on the same clip and the same arrive on MQTT.
#
# Prints each step's time and a PASS/FAIL summary; exits non-zero on any failure, and with a
# one-line reason when arm64 emulation is unavailable (binfmt_misc needs the host kernel: a
# container must be privileged). Needs this checkout's .venv (tools/test.sh makes it) for the x86
# side. Emulation is 150-270x slower than native: the clip and the models are kept small.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
# shellcheck source=tools/venv.sh
source tools/venv.sh

ROOT=${EDGE_ARM64_ROOT:-/var/cache/edge-arm64/bookworm}
CACHE=${EDGE_ARM64_CACHE:-$(dirname "$ROOT")/cache}
MIRROR=${EDGE_ARM64_MIRROR:-http://deb.debian.org/debian}
HOST_PY=${EDGE_ARM64_HOST_PYTHON:-$SRC/.venv/bin/python}
# What the root is made of; a root made from another recipe is made again.
ROOT_PACKAGES=python3-venv  # python3 and its venv module (apt, passwd: in minbase)
RECIPE="bookworm arm64 minbase $ROOT_PACKAGES"
WORK_IN_ROOT=/tmp/edge-arm64-check
# The root trusts the certificate authorities this machine trusts (a proxy's CA, if any).
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
CA_ENV=()
[ -f "$CA_BUNDLE" ] && CA_ENV=(SSL_CERT_FILE="$CA_BUNDLE" PIP_CERT="$CA_BUNDLE" REQUESTS_CA_BUNDLE="$CA_BUNDLE")
WORK=$ROOT$WORK_IN_ROOT
export QEMU_CPU=cortex-a72

STEPS=()
RESULT=FAIL
MOUNTS=()
BROKER_PID=""
SUB_PID=""

say() { echo "== arm64: $*"; }
die() { echo "arm64_check: $*" >&2; exit 1; }

summary() {
  local rc=$?
  cleanup
  echo
  echo "== arm64 check summary"
  local line
  for line in "${STEPS[@]}"; do echo "   $line"; done
  [ "$rc" = 0 ] && [ "$RESULT" = PASS ] || RESULT=FAIL
  echo "== arm64 check: $RESULT (${SECONDS}s in all)"
  [ "$RESULT" = PASS ] || exit 1
}

cleanup() {
  [ -n "$SUB_PID" ] && kill "$SUB_PID" 2>/dev/null || true
  [ -n "$BROKER_PID" ] && kill "$BROKER_PID" 2>/dev/null || true
  SUB_PID="" BROKER_PID=""
  unmount_all
}

# step NAME COMMAND...: run one step, record its time and outcome; stops the script on failure.
# The step runs in a subshell with errexit on (bash ignores errexit in a function called from
# `cmd || ...`), and its mounts and processes are undone when it ends.
step() {
  local name=$1 started=$SECONDS rc=0
  shift
  say "$name"
  set +e
  (
    set -e
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    "$@"
  )
  rc=$?
  set -e
  local took=$((SECONDS - started))
  if [ "$rc" = 0 ]; then
    STEPS+=("$(printf '%-12s %5ss  ok' "$name" "$took")")
  else
    STEPS+=("$(printf '%-12s %5ss  FAILED (exit %s)' "$name" "$took" "$rc")")
    exit 1
  fi
}

# Mounts inside the root, undone in reverse order by unmount_all (also on exit).
mount_in() {  # mount_in DEST MOUNT-ARGS...
  local dest=$1
  shift
  mkdir -p "$dest"
  mount "$@" "$dest"
  MOUNTS+=("$dest")
}

unmount_all() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" 2>/dev/null || true
  done
  MOUNTS=()
}

# Anything still mounted under $1 (an earlier run killed halfway), deepest first.
unmount_under() {
  local m
  for m in $(findmnt -rno TARGET | grep -E "^$1(/|$)" | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
}

# Run a command inside the root with a clean environment; procfs is not mounted unless a step
# mounts it, so /proc/cpuinfo and /proc/device-tree/model are the Pi 4 files written there.
in_root() {  # in_root TIMEOUT COMMAND...
  local limit=$1
  shift
  timeout --kill-after=30 "$limit" chroot "$ROOT" /usr/bin/env -i \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    QEMU_CPU="$QEMU_CPU" PIP_CACHE_DIR=/var/cache/edge-arm64/pip "${CA_ENV[@]}" \
    EDGE_CACHE_DIR=/var/cache/edge-arm64/wheels PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_PROGRESS_BAR=off "$@"
}

# sysfs (read-only) for the steps that run models: ONNX Runtime's and XNNPACK's cpuinfo read
# /sys/devices/system/cpu/{possible,present} and complain without them. Optional.
mount_sys() {
  if mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$ROOT/sys" 2>/dev/null; then
    MOUNTS+=("$ROOT/sys")
  fi
}

fake_pi_proc() {
  # The files edge.runners.select.probe_hardware and tools/install.sh read, as on a Pi 4.
  # qemu-user has no /proc/device-tree; these are regular files in the root's /proc folder,
  # visible while procfs is not mounted over it.
  mkdir -p "$ROOT/proc/device-tree"
  install -m 0644 "$SRC/tools/arm64/cpuinfo-pi4.txt" "$ROOT/proc/cpuinfo"
  printf 'Raspberry Pi 4 Model B Rev 1.2\0' > "$ROOT/proc/device-tree/model"
  printf 'raspberrypi,4-model-b\0brcm,bcm2711\0' > "$ROOT/proc/device-tree/compatible"
}

check_host() {
  [ "$(id -u)" = 0 ] || die "run as root: debootstrap, chroot and mount need it"
  command -v apt-get >/dev/null || die "needs a Debian-like host (apt-get) for qemu-user-static, binfmt-support, debootstrap"
  [ -x "$HOST_PY" ] || die "$HOST_PY not found: run bash tools/test.sh first (it makes .venv), or set EDGE_ARM64_HOST_PYTHON"
  # mosquitto: the broker for step 5; ffmpeg: cuts the demo clip.
  apt_install qemu-user-static binfmt-support debootstrap mosquitto mosquitto-clients ffmpeg
  case "$(uname -m)" in
    aarch64) say "this machine is arm64: the root runs natively" ; return 0 ;;
    x86_64) ;;
    *) die "unsupported host architecture $(uname -m) (x86_64 with qemu-user, or aarch64)" ;;
  esac
  local misc=/proc/sys/fs/binfmt_misc
  if [ ! -e "$misc/status" ]; then
    mount -t binfmt_misc binfmt_misc "$misc" 2>/dev/null ||
      die "arm64 emulation unavailable: binfmt_misc is not mounted at $misc and cannot be (a container needs --privileged)"
  fi
  if ! grep -qx enabled "$misc/qemu-aarch64" 2>/dev/null; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  fi
  grep -qx enabled "$misc/qemu-aarch64" 2>/dev/null ||
    die "arm64 emulation unavailable: no enabled qemu-aarch64 entry in $misc (update-binfmts --enable qemu-aarch64 failed)"
  # F (fix binary): the kernel opens the interpreter at registration, so it works inside a chroot.
  grep -q '^flags:.*F' "$misc/qemu-aarch64" ||
    die "arm64 emulation unavailable: $misc/qemu-aarch64 lacks the F flag, so qemu cannot run inside the root"
}

root_works() {
  [ -f "$ROOT/.edge-arm64-recipe" ] && [ "$(cat "$ROOT/.edge-arm64-recipe")" = "$RECIPE" ] || return 1
  in_root 300 /usr/bin/python3 -c 'import ensurepip, venv, ssl' 2>/dev/null
}

make_root() {
  mkdir -p "$(dirname "$ROOT")"
  unmount_under "$ROOT"
  if root_works; then
    say "reusing the arm64 root $ROOT"
    return 0
  fi
  say "making the arm64 root $ROOT (debootstrap --arch=arm64 bookworm, about 4 minutes)"
  local new="$ROOT.new"
  unmount_under "$new"
  rm -rf --one-file-system "$new" "$ROOT"
  timeout 2400 debootstrap --arch=arm64 --variant=minbase --include="$ROOT_PACKAGES" \
    bookworm "$new" "$MIRROR" > "$(dirname "$ROOT")/debootstrap.log" 2>&1 || {
    tail -20 "$(dirname "$ROOT")/debootstrap.log" >&2
    die "debootstrap failed (log: $(dirname "$ROOT")/debootstrap.log)"
  }
  echo "$RECIPE" > "$new/.edge-arm64-recipe"
  mv "$new" "$ROOT"
  root_works || die "the new arm64 root $ROOT cannot run python3 under qemu-aarch64"
}

install_edge() {
  mkdir -p "$CACHE/pip" "$CACHE/wheels"
  mount_in "$ROOT/var/cache/edge-arm64" --bind "$CACHE"
  # A copy of the checkout (pip builds in the source folder; the shared one is left alone).
  rm -rf "$ROOT/usr/src/edge"
  mkdir -p "$ROOT/usr/src/edge"
  tar -C "$SRC" -cf - --exclude=./.git --exclude=./.venv --exclude=./.cache --exclude=./build \
    --exclude=./dist --exclude=./state --exclude=./demo --exclude='*.egg-info' --exclude=__pycache__ \
    --exclude='./.*_cache' --exclude='./models/*/*.tflite' --exclude='./models/*/*.onnx' \
    --exclude='./models/*/LICENSE*' . | tar -C "$ROOT/usr/src/edge" -xf -
  cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
  # debootstrap writes no /etc/hosts; a Pi has one (edge's MQTT host is localhost).
  [ -s "$ROOT/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$ROOT/etc/hosts"
  if [ -f "$CA_BUNDLE" ]; then
    install -D -m 0644 "$CA_BUNDLE" "$ROOT$CA_BUNDLE"
  fi
  fake_pi_proc
  # A cached root keeps the last run's /opt/edge: install.sh updates it as it updates a Pi
  # (the venv kept, edge reinstalled, dependencies upgraded when pyproject.toml asks).
  # EDGE_ARM64_FRESH=1 uninstalls first (--uninstall --purge), for a first install every time.
  if [ -d "$ROOT/opt/edge" ] && [ "${EDGE_ARM64_FRESH:-0}" = 1 ]; then
    in_root 600 bash /usr/src/edge/tools/install.sh --uninstall --purge
  fi
  in_root 3000 bash /usr/src/edge/tools/install.sh
  umount "$ROOT/var/cache/edge-arm64" && unset 'MOUNTS[-1]'
}

probe() {
  fake_pi_proc
  mount_sys
  in_root 600 /opt/edge/venv/bin/edge probe --model blazepose --no-measure
  in_root 600 /opt/edge/venv/bin/edge probe --model blazepose --no-measure --json > "$WORK/probe.json"
  "$HOST_PY" - "$WORK/probe.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
hw, model = report["hardware"], report["model"]
checks = [
    ("arch aarch64", hw["arch"] == "aarch64"),
    ("Raspberry Pi board", hw["is_raspberry_pi"] and "Raspberry Pi 4" in (hw["board"] or "")),
    ("Arm CPU with asimd", hw["cpu_vendor"] == "ARM" and "asimd" in hw["cpu_flags"]),
    ("LiteRT installed", bool(hw["backends"].get("litert"))),
    ("runner litert", model["runner"] == "litert"),
    ("chosen for Arm", any(r.startswith("Arm CPU (aarch64): LiteRT") for r in model["reasons"])),
]
for name, ok in checks:
    print(f"{'ok  ' if ok else 'FAIL'} probe: {name}")
sys.exit(0 if all(ok for _, ok in checks) else 1)
PY
}

golden() {
  fake_pi_proc
  mount_sys
  "$HOST_PY" tools/arm64/golden.py reference "$WORK/golden-x86.npz" 2> >(grep -v '^INFO: ' >&2)
  in_root 1200 /opt/edge/venv/bin/python /usr/src/edge/tools/arm64/golden.py dump \
    "$WORK_IN_ROOT/golden-x86.npz" "$WORK_IN_ROOT/golden-arm64.npz" 2> >(grep -v '^INFO: ' >&2)
  "$HOST_PY" tools/arm64/golden.py compare "$WORK/golden-x86.npz" "$WORK/golden-arm64.npz"
}

small_clip() {
  # The demo clip (tools/make_demo_video.py, deterministic), cut to 2.5-8.5 s at 640x360, 5 fps.
  "$HOST_PY" tools/make_demo_video.py "$WORK/demo.mp4" 2>/dev/null
  ffmpeg -loglevel error -y -ss 2.5 -t 6 -i "$WORK/demo.mp4" -vf scale=640:360,fps=5 -c:v libx264 \
    -preset veryfast -crf 23 -pix_fmt yuv420p -threads 1 -bitexact "$WORK/small.mp4"
  rm -f "$WORK/demo.mp4"
}

start_broker() {
  local port i
  port=$("$HOST_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nuser root\n' "$port" > "$WORK/mosquitto.conf"
  mosquitto -c "$WORK/mosquitto.conf" > "$WORK/mosquitto.log" 2>&1 &
  BROKER_PID=$!
  for i in $(seq 300); do
    mosquitto_pub -h 127.0.0.1 -p "$port" -t edge-arm64-check/up -m "$i" 2>/dev/null && break
    [ "$i" = 300 ] && { echo "arm64_check: mosquitto did not start on port $port (log: $WORK/mosquitto.log)" >&2; return 1; }
    sleep 0.1
  done
  # The subscriber (topic and payload a line) is ready once it has received our own ping.
  mosquitto_sub -h 127.0.0.1 -p "$port" -q 1 -v -t edge/arm64/events -t edge-arm64-check/ready \
    > "$WORK/mqtt.txt" 2> "$WORK/mosquitto_sub.log" &
  SUB_PID=$!
  for i in $(seq 300); do
    mosquitto_pub -h 127.0.0.1 -p "$port" -q 1 -t edge-arm64-check/ready -m "$i"
    if grep -q '^edge-arm64-check/ready ' "$WORK/mqtt.txt"; then
      BROKER_PORT=$port
      return 0
    fi
    sleep 0.1
  done
  echo "arm64_check: mosquitto_sub on port $port received nothing in 30 s ($WORK/mosquitto_sub.log)" >&2
  return 1
}

run_clip() {
  fake_pi_proc
  mount_sys
  small_clip
  start_broker
  # x86 first (the host's .venv): the events arm64 must give, on the same backend (on x86
  # `runner: auto` times LiteRT against OpenVINO and may take either).
  "$HOST_PY" -m edge run tools/arm64/small.yaml --set "state_dir=$WORK/state-x86" \
    --set "cameras.entrance.source.path=$WORK/small.mp4" --set mqtt.enabled=false \
    --set models.person.runner=litert 2> "$WORK/run-x86.log" || {
    tail -20 "$WORK/run-x86.log" >&2
    return 1
  }
  in_root 1500 /opt/edge/venv/bin/edge run /usr/src/edge/tools/arm64/small.yaml \
    --set "state_dir=$WORK_IN_ROOT/state-arm64" --set "cameras.entrance.source.path=$WORK_IN_ROOT/small.mp4" \
    --set "mqtt.port=$BROKER_PORT" 2> >(grep -v '^INFO: ' >&2)
  # The broker has had every event once edge run returns (its outbox drains before it stops).
  kill "$SUB_PID" 2>/dev/null || true
  wait "$SUB_PID" 2>/dev/null || true
  SUB_PID=""
  sed -n 's|^edge/arm64/events ||p' "$WORK/mqtt.txt" > "$WORK/mqtt-events.jsonl"
  "$HOST_PY" tools/arm64/events.py "$WORK/state-x86/events.jsonl" "$WORK/state-arm64/events.jsonl" \
    "$WORK/mqtt-events.jsonl"
}

trap summary EXIT
check_host
mkdir -p "$(dirname "$ROOT")"
exec 9> "$(dirname "$ROOT")/lock"
flock -w 3600 9 || die "another arm64 check holds $(dirname "$ROOT")/lock"
step debootstrap make_root
rm -rf "$WORK"
mkdir -p "$WORK"
step install install_edge
step probe probe
step golden golden
step run run_clip
RESULT=PASS
