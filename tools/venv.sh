# Set-up steps shared by tools/demo.sh, tools/test.sh and tools/install.sh (they source this file).
# Debian 12 and Ubuntu 24.04 refuse `pip install` into the system Python (PEP 668,
# "externally-managed-environment"), so edge and its tools live in a venv.
#
#   apt_install PKG...            install the packages dpkg does not have (as root, else with sudo),
#                                 waiting up to $APT_LOCK_WAIT s for another apt/dpkg (unattended-upgrades)
#   apt_install_available PKG...  the same for packages this distribution may not have (Ubuntu ships
#                                 chromium as a snap): the ones apt has no candidate for are skipped
#   ensure_venv DIR [ARGS...]     make DIR a working venv with $PYTHON (default python3) and ARGS
#                                 (e.g. --system-site-packages); kept when it works and, if $PYTHON is
#                                 set, was made by that interpreter; installs python3-venv when missing
#   use_venv DIR                  put DIR/bin first on PATH (what `source DIR/bin/activate` does)
#
# Run directly, `bash tools/venv.sh DIR [ARGS...]` is ensure_venv DIR ARGS.

APT_LOCK_WAIT=${APT_LOCK_WAIT:-120}
_apt_updated=0

_as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'
}

# `apt-get update` once per run. DPkg::Lock::Timeout covers dpkg's lock, not the lists lock that
# update takes (apt 2.6 fails at once on it), so update is retried while that lock is held.
apt_update() {
  [ "$_apt_updated" = 1 ] && return 0
  local err waited=0
  err=$(mktemp)
  until _as_root apt-get -o DPkg::Lock::Timeout="$APT_LOCK_WAIT" update -qq 2>"$err"; do
    if grep -q 'Could not get lock' "$err" && [ "$waited" -lt "$APT_LOCK_WAIT" ]; then
      [ "$waited" = 0 ] && echo "== waiting for another apt to release its lock" >&2
      sleep 5
      waited=$((waited + 5))
    else
      cat "$err" >&2
      rm -f "$err"
      return 1
    fi
  done
  cat "$err" >&2  # warnings, if any
  rm -f "$err"
  _apt_updated=1
}

apt_install() {
  local pkg need=()
  for pkg in "$@"; do
    _installed "$pkg" || need+=("$pkg")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  echo "== apt install ${need[*]}"
  apt_update
  _as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout="$APT_LOCK_WAIT" install -y -qq "${need[@]}" >/dev/null
}

apt_install_available() {
  local pkg need=() have=()
  for pkg in "$@"; do
    _installed "$pkg" || need+=("$pkg")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  apt_update
  for pkg in "${need[@]}"; do
    if apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [^(]'; then
      have+=("$pkg")
    else
      echo "== $pkg: no such package in this distribution's apt sources; skipped" >&2
    fi
  done
  [ ${#have[@]} -gt 0 ] || return 0
  apt_install "${have[@]}"
}

# The Debian package that gives $1 (a system interpreter) its venv module and ensurepip.
_venv_package() {
  local ver system_ver
  ver=$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  system_ver=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
  if [ "$ver" = "$system_ver" ]; then echo python3-venv; else echo "python$ver-venv"; fi
}

_same_interpreter() {  # venv DIR was made by interpreter $2
  local made_by wanted
  made_by=$("$1/bin/python" -c 'import os, sys; print(os.path.realpath(sys._base_executable))') || return 1
  wanted=$("$2" -c 'import os, sys; print(os.path.realpath(sys.executable))') || return 1
  [ "$made_by" = "$wanted" ]
}

ensure_venv() {
  local dir=$1
  shift
  local py=${PYTHON:-python3} clear=()
  if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c '' 2>/dev/null; then
    if [ -z "${PYTHON:-}" ] || _same_interpreter "$dir" "$py"; then
      return 0
    fi
    echo "== $dir was made by another interpreter than PYTHON=$PYTHON: making it again"
    clear=(--clear)
  elif [ -f "$dir/pyvenv.cfg" ]; then
    clear=(--clear)  # a broken venv: its interpreter moved, or an earlier attempt stopped halfway
  fi
  echo "== $py -m venv ${clear[*]:+${clear[*]} }${*:+$* }$dir"
  if "$py" -m venv "${clear[@]}" "$@" "$dir"; then
    return 0
  fi
  # Debian/Ubuntu ship venv's ensurepip separately (python3-venv); the failed attempt left a
  # venv without pip behind, so the second one clears it.
  if [ "$("$py" -c 'import sys; print(sys.base_prefix)')" = /usr ] && command -v apt-get >/dev/null; then
    apt_install "$(_venv_package "$py")"
    "$py" -m venv --clear "$@" "$dir"
  else
    echo "venv.sh: $py -m venv $dir failed; install that interpreter's venv module (ensurepip)" >&2
    return 1
  fi
}

use_venv() {
  VIRTUAL_ENV=$(cd "$1" && pwd)
  PATH="$VIRTUAL_ENV/bin:$PATH"
  export VIRTUAL_ENV PATH
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  [ $# -ge 1 ] || { echo "usage: bash tools/venv.sh DIR [python -m venv options]" >&2; exit 2; }
  ensure_venv "$@"
fi
