"""The shipped units pass `systemd-analyze verify` and score OK or better on
`systemd-analyze security --offline=true` (systemd 252 works without systemd as PID 1)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parent.parent / "systemd"


@pytest.fixture(scope="module")
def analyze() -> str:
    binary = shutil.which("systemd-analyze")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze must be installed in CI (Debian package systemd)")
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    return binary


@pytest.mark.parametrize(("unit", "name"), [("edge.service", "edge.service"), ("edge@.service", "edge@gate.service")])
def test_unit_verifies_and_is_hardened(unit: str, name: str, analyze: str, tmp_path: Path) -> None:
    edge = shutil.which("edge")
    assert edge is not None
    # verify checks that ExecStart's binary exists: point it at this environment's edge.
    text = (UNITS / unit).read_text().replace("/opt/edge/venv/bin/edge", edge)
    (tmp_path / name).write_text(text)
    verify = subprocess.run([analyze, "verify", str(tmp_path / name)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    security = subprocess.run([analyze, "security", "--offline=true", str(tmp_path / name)], capture_output=True, text=True)
    match = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", security.stdout)
    assert match, security.stdout[-500:]
    score, verdict = float(match.group(1)), match.group(2)
    assert verdict in ("SAFE", "OK"), f"{score} {verdict}"
    print(f"{name}: exposure {score} {verdict}")


def test_unit_has_the_promised_settings() -> None:
    text = (UNITS / "edge.service").read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "StartLimitBurst=", "ExecStartPre=/opt/edge/venv/bin/edge check-config",
                 "User=edge", "StateDirectory=edge", "ConfigurationDirectory=edge", "SupplementaryGroups=video",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "ProtectKernelTunables=yes",
                 "RestrictAddressFamilies=", "SystemCallFilter=@system-service", "DevicePolicy=closed",
                 "DeviceAllow=char-video4linux rw", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line in text, line
