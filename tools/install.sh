#!/usr/bin/env bash
# Install edge as a systemd service on a Debian-like system (Raspberry Pi OS, Ubuntu, JetPack).
#
#   sudo tools/install.sh                 # install or update (idempotent)
#   sudo tools/install.sh --uninstall     # remove the service and /opt/edge; keep /etc/edge and /var/lib/edge
#   sudo tools/install.sh --uninstall --purge   # also remove config, state and the edge user
#
# Options: --root DIR (stage into DIR, e.g. for packaging: no user, no systemctl),
#          --extras LIST (override the board's extras, e.g. "openvino"), --system-site-packages,
#          --no-fetch (do not download the pinned models).
# Boards: Jetson -> venv with --system-site-packages so JetPack's TensorRT and OpenCV (with
# GStreamer) are used; Raspberry Pi / other Arm -> [litert]; Intel -> [openvino]; else core.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
ROOT=""
EXTRAS="auto"
SYSTEM_SITE=0
FETCH=1
UNINSTALL=0
PURGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=$(realpath -m "$2"); shift 2 ;;
    --extras) EXTRAS="$2"; shift 2 ;;
    --system-site-packages) SYSTEM_SITE=1; shift ;;
    --no-fetch) FETCH=0; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

OPT="$ROOT/opt/edge"
ETC="$ROOT/etc/edge"
UNITS="$ROOT/etc/systemd/system"
STATE="$ROOT/var/lib/edge"
live_system() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }
say() { echo "== $*"; }

if [ "$UNINSTALL" = 1 ]; then
  if live_system; then
    systemctl disable --now edge.service 2>/dev/null || true
    systemctl list-units --plain --no-legend 'edge@*' 2>/dev/null | awk '{print $1}' | xargs -r systemctl disable --now || true
  fi
  rm -f "$UNITS/edge.service" "$UNITS/edge@.service"
  rm -rf "$OPT"
  if [ "$PURGE" = 1 ]; then
    rm -rf "$ETC" "$STATE"
    if [ -z "$ROOT" ] && id edge >/dev/null 2>&1; then userdel edge || true; fi
  fi
  if live_system; then systemctl daemon-reload; fi
  say "uninstalled (config in $ETC and state in $STATE kept unless --purge)"
  exit 0
fi

# Board -> extras, the same probe edge itself uses.
if [ -f /etc/nv_tegra_release ] || grep -qi tegra /proc/device-tree/compatible 2>/dev/null; then
  board="jetson"; SYSTEM_SITE=1; default_extras=""
elif grep -q "Raspberry Pi" /proc/device-tree/model 2>/dev/null || uname -m | grep -Eq '^(aarch64|arm)'; then
  board="arm"; default_extras="litert"
elif grep -q GenuineIntel /proc/cpuinfo 2>/dev/null; then
  board="intel"; default_extras="openvino"
else
  board="generic"; default_extras=""
fi
[ "$EXTRAS" = "auto" ] && EXTRAS="$default_extras"
say "board: $board; extras: ${EXTRAS:-none}; venv: $OPT/venv"

if [ -z "$ROOT" ]; then
  if ! id edge >/dev/null 2>&1; then
    say "creating system user edge"
    useradd --system --home-dir /var/lib/edge --no-create-home --shell /usr/sbin/nologin edge
  fi
  for group in video render; do
    if getent group "$group" >/dev/null; then usermod -a -G "$group" edge; fi
  done
fi

mkdir -p "$OPT" "$ETC" "$UNITS"
if [ ! -x "$OPT/venv/bin/python" ]; then
  venv_args=()
  [ "$SYSTEM_SITE" = 1 ] && venv_args+=(--system-site-packages)
  python3 -m venv "${venv_args[@]}" "$OPT/venv"
fi
spec="$SRC"
[ -n "$EXTRAS" ] && spec="$SRC[$EXTRAS]"
say "pip install $spec"
"$OPT/venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade "$spec"
install -m 0644 "$SRC/README.md" "$OPT/README.md"

mkdir -p "$OPT/models"
for manifest in "$SRC"/models/*/model.yaml; do
  pkg=$(basename "$(dirname "$manifest")")
  install -D -m 0644 "$manifest" "$OPT/models/$pkg/model.yaml"
done
if [ "$FETCH" = 1 ]; then
  say "fetching the pinned models into $OPT/models"
  EDGE_CACHE_DIR="${EDGE_CACHE_DIR:-$OPT/cache}" "$OPT/venv/bin/edge" models fetch --dest "$OPT/models"
fi

install -m 0644 "$SRC/systemd/edge.service" "$UNITS/edge.service"
install -m 0644 "$SRC/systemd/edge@.service" "$UNITS/edge@.service"
if [ ! -f "$ETC/edge.yaml" ]; then
  install -m 0640 "$SRC/configs/example-sources.yaml" "$ETC/edge.yaml"
  say "wrote an example config to $ETC/edge.yaml: edit it, then: systemctl enable --now edge"
else
  say "keeping the existing $ETC/edge.yaml"
fi
if [ ! -f "$ETC/edge.env" ]; then
  printf '# Secrets for edge.yaml (${NAME} references). Mode 0600.\nMQTT_PASSWORD=\nCAM_USER=\nCAM_PASS=\n' > "$ETC/edge.env"
  chmod 0600 "$ETC/edge.env"
fi
if [ -z "$ROOT" ]; then
  chown -R root:edge "$ETC"
  chmod 0750 "$ETC"
fi
if live_system; then
  systemctl daemon-reload
  say "installed; start with: systemctl enable --now edge  (logs: journalctl -u edge -f)"
else
  say "installed into ${ROOT:-/} (systemd not running here: no daemon-reload)"
fi
