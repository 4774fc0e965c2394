#!/usr/bin/env bash
# Install edge as a systemd service on a Debian-like system (Raspberry Pi OS, Ubuntu, JetPack).
#
#   sudo tools/install.sh                 # install or update (idempotent)
#   sudo tools/install.sh --uninstall     # remove the service and /opt/edge; keep /etc/edge and /var/lib/edge
#   sudo tools/install.sh --uninstall --purge   # also remove config, state and the edge user
#   tools/install.sh --root DIR           # stage the same tree into DIR for a package or an image
#
# Options: --root DIR, --extras LIST (override the board's extras, e.g. "openvino"),
#          --system-site-packages, --no-fetch (do not download the pinned models).
# Boards: Jetson -> venv with --system-site-packages so JetPack's TensorRT and OpenCV (with
# GStreamer) are used; Raspberry Pi / other Arm -> [litert]; Intel -> [openvino]; else core.
# The venv is made by $PYTHON (default python3); python3-venv is installed when it is missing.
#
# --root DIR is for packaging: it writes DIR/opt/edge (venv, README, models), DIR/etc/edge
# (example edge.yaml, 0600 edge.env) and DIR/etc/systemd/system/edge{,@}.service, and the tree is
# correct once copied to / (a .deb's data, an image's root file system), not where it is staged:
# the venv's scripts, activate files, pyvenv.cfg and bytecode name /opt/edge/venv, and the models'
# download cache stays outside DIR (EDGE_CACHE_DIR, default ~/.cache/edge/wheels). The venv links
# to $PYTHON's interpreter by path, so stage on the target's distribution and architecture (a
# container of it) with its /usr/bin/python3. Staging creates no user and runs no systemctl; the
# package's postinst does, as root:
#   useradd --system --home-dir /var/lib/edge --no-create-home --shell /usr/sbin/nologin edge
#   usermod -a -G video,render edge; chown -R root:edge /etc/edge; chmod 0750 /etc/edge
#   systemctl daemon-reload
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tools/venv.sh
source "$SRC/tools/venv.sh"
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
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

OPT="$ROOT/opt/edge"
ETC="$ROOT/etc/edge"
UNITS="$ROOT/etc/systemd/system"
STATE="$ROOT/var/lib/edge"
live_system() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }
say() { echo "== $*"; }

# The staged venv at $1 will live at $2 once its root $3 is copied to /: rewrite the paths naming
# $1 in its scripts (console-script shebangs, activate*), pyvenv.cfg, and compiled bytecode.
relocate_venv() {
  "$1/bin/python" - "$1" "$2" <<'PY'
import pathlib, sys
staged, final = sys.argv[1].encode(), sys.argv[2].encode()
venv = pathlib.Path(sys.argv[1])
for path in [*venv.joinpath("bin").iterdir(), venv / "pyvenv.cfg"]:
    if path.is_file() and not path.is_symlink():
        data = path.read_bytes()
        if staged in data and b"\0" not in data:
            path.write_bytes(data.replace(staged, final))
PY
  "$1/bin/python" -m compileall -q -f -j 0 -s "$3" -p / "$1/lib" >/dev/null
}

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
venv_args=()
[ "$SYSTEM_SITE" = 1 ] && venv_args+=(--system-site-packages)
ensure_venv "$OPT/venv" "${venv_args[@]}"
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
if [ -n "$ROOT" ]; then
  rm -rf "$OPT/cache"  # left in staged trees by earlier versions of this script
fi
# `python -m edge`, not bin/edge: a staged bin/edge names /opt/edge/venv/bin/python (see below).
if [ "$FETCH" = 1 ]; then
  say "fetching the pinned models into $OPT/models"
  if [ -n "$ROOT" ]; then
    # Staging: the download cache (EDGE_CACHE_DIR, else edge's default ~/.cache/edge/wheels) is
    # kept outside the staged tree, so it is not packaged.
    "$OPT/venv/bin/python" -m edge models fetch --dest "$OPT/models"
  else
    EDGE_CACHE_DIR="${EDGE_CACHE_DIR:-$OPT/cache}" "$OPT/venv/bin/python" -m edge models fetch --dest "$OPT/models"
  fi
fi
if [ -n "$ROOT" ]; then
  say "making the staged venv's paths the ones it has once DIR is copied to /"
  relocate_venv "$OPT/venv" "/opt/edge/venv" "$ROOT"
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
