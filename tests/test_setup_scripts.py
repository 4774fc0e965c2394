"""The set-up scripts (tools/demo.sh, tools/test.sh, tools/install.sh, tools/venv.sh, .ci/run):
they parse; every apt-get waits for another apt's lock; pip only ever installs into a venv (the
system Python of Debian 12 / Ubuntu 24.04 refuses it, PEP 668); demo.sh refuses a bad MQTT_PORT
before installing anything. tools/venv.sh's ensure_venv is run for real: it makes a venv, keeps a
working one, remakes a broken one or one made by another interpreter than PYTHON."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = ["tools/demo.sh", "tools/test.sh", "tools/install.sh", "tools/venv.sh", ".ci/run"]
APT_GET = re.compile(r"\bapt-get\s+(?:-\S+\s+\S+\s+)*(update|install|upgrade|remove)\b")
PIP_INSTALL = re.compile(r"-m pip install\b")


def code_lines(script: str) -> list[str]:
    """The script's lines that are not comments or echo/say messages; continuation lines joined."""
    text = (REPO / script).read_text().replace("\\\n", " ")
    return [line for line in text.splitlines() if not re.match(r"\s*(#|echo |say )", line)]


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_parses(script: str) -> None:
    out = subprocess.run(["bash", "-n", str(REPO / script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_apt_get_waits_for_the_lock(script: str) -> None:
    calls = [line for line in code_lines(script) if APT_GET.search(line)]
    assert [line for line in calls if "-o DPkg::Lock::Timeout=" not in line] == []


def test_apt_get_is_only_called_through_venv_sh() -> None:
    """One place runs apt-get (with the lock wait and the update retry); it is called at all."""
    counted = {script: sum(bool(APT_GET.search(line)) for line in code_lines(script)) for script in SCRIPTS}
    assert counted == {script: 2 if script == "tools/venv.sh" else 0 for script in SCRIPTS}


@pytest.mark.parametrize(
    ("script", "venv_python"),
    [("tools/demo.sh", ".venv/bin/python"), ("tools/test.sh", ".venv/bin/python"),
     ("tools/install.sh", '"$OPT/venv/bin/python"')],
)  # fmt: skip
def test_pip_installs_only_into_the_venv(script: str, venv_python: str) -> None:
    installs = [line.strip() for line in code_lines(script) if PIP_INSTALL.search(line)]
    assert installs and all(line.startswith(f"{venv_python} -m pip install") for line in installs)
    assert "source" in (REPO / script).read_text() and "ensure_venv " in (REPO / script).read_text()


@pytest.mark.parametrize("port", ["abc", "18 83", "-1", "0", "65536", "1883x"])
def test_demo_refuses_a_bad_mqtt_port_at_once(port: str) -> None:
    out = subprocess.run(["bash", str(REPO / "tools/demo.sh")], capture_output=True, text=True,
                         env={**os.environ, "MQTT_PORT": port}, timeout=60)  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.splitlines() == [f"demo.sh: MQTT_PORT={port}: expected a port number 1-65535"]


def ensure_venv(venv: Path, python: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VIRTUAL_ENV")}
    if python is not None:
        env["PYTHON"] = python
    out = subprocess.run(["bash", str(REPO / "tools/venv.sh"), str(venv)], capture_output=True, text=True,
                         env=env, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out


def made_by(venv: Path) -> str:
    """The real path of the interpreter that made the venv (pyvenv.cfg's `executable`)."""
    cfg = dict(line.split(" = ", 1) for line in (venv / "pyvenv.cfg").read_text().splitlines() if " = " in line)
    return os.path.realpath(cfg.get("executable") or Path(cfg["home"]) / "python3")


def real_interpreter(python: str) -> str:
    out = subprocess.run([python, "-c", "import os, sys; print(os.path.realpath(sys.executable))"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout.strip()


def other_interpreters() -> list[str]:
    """Interpreters here with a working venv module, one per real path, `python3` first."""
    found: dict[str, str] = {}
    for name in ["python3", "/usr/bin/python3", "python3.10", "python3.11", "python3.12", "python3.13"]:
        path = shutil.which(name)
        if path is None:
            continue
        probe = subprocess.run([path, "-c", "import ensurepip, venv"], capture_output=True)
        if probe.returncode == 0:
            found.setdefault(real_interpreter(path), path)
    return list(found.values())


@pytest.mark.slow
def test_ensure_venv_makes_keeps_and_remakes(tmp_path: Path) -> None:
    venv = tmp_path / ".venv"
    first = ensure_venv(venv)
    assert "-m venv" in first.stdout
    assert subprocess.run([str(venv / "bin/python"), "-m", "pip", "--version"], capture_output=True).returncode == 0
    assert made_by(venv) == real_interpreter("python3")

    cfg = (venv / "pyvenv.cfg").stat()
    again = ensure_venv(venv)
    assert again.stdout == "" and (venv / "pyvenv.cfg").stat().st_mtime_ns == cfg.st_mtime_ns
    assert ensure_venv(venv, "python3").stdout == ""  # PYTHON names the interpreter that made it

    # A venv whose interpreter went away (an upgrade, a moved pyenv) is made again.
    for exe in (venv / "bin").glob("python*"):  # python, python3, python3.X: each may point anywhere
        exe.unlink()
        exe.symlink_to(tmp_path / "no-such-python")
    remade = ensure_venv(venv)
    assert "-m venv" in remade.stdout
    assert subprocess.run([str(venv / "bin/python"), "-c", ""]).returncode == 0


@pytest.mark.slow
def test_ensure_venv_honours_python(tmp_path: Path) -> None:
    pythons = other_interpreters()
    if len(pythons) < 2:
        pytest.skip("only one interpreter with a venv module here")
    venv = tmp_path / ".venv"
    ensure_venv(venv, pythons[0])
    assert made_by(venv) == real_interpreter(pythons[0])
    switched = ensure_venv(venv, pythons[1])
    assert "made by another interpreter" in switched.stdout
    assert made_by(venv) == real_interpreter(pythons[1])
