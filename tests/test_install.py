"""tools/install.sh staged into a temporary root (--root: no user, no systemctl): installs a
venv with a working `edge`, the units, an example config and a 0600 secrets file; running it
again keeps the operator's config; --uninstall removes the program but keeps config and state."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def install(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "tools" / "install.sh"), "--root", str(root), "--system-site-packages", "--no-fetch",
         "--extras", "", *extra],
        capture_output=True, text=True, timeout=600,
    )


def test_install_is_idempotent_and_uninstall_keeps_config(tmp_path: Path, models_dir: Path) -> None:
    root = tmp_path / "root"
    first = install(root)
    assert first.returncode == 0, first.stderr
    edge = root / "opt/edge/venv/bin/edge"
    assert subprocess.run([str(edge), "--version"], capture_output=True, text=True, check=True).stdout.startswith("edge ")
    assert (root / "etc/systemd/system/edge.service").read_text() == (REPO / "systemd/edge.service").read_text()
    assert (root / "etc/systemd/system/edge@.service").exists()
    assert (root / "opt/edge/models/blazepose/model.yaml").exists()
    env_file = root / "etc/edge/edge.env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"

    # The installed example config validates with the installed edge (secrets from edge.env).
    env = {**os.environ, "EDGE_MODELS_DIR": str(models_dir), "CAM_USER": "u", "CAM_PASS": "p"}
    check = subprocess.run([str(edge), "check-config", str(root / "etc/edge/edge.yaml")], capture_output=True, text=True, env=env)
    assert check.returncode == 0, check.stderr

    config = root / "etc/edge/edge.yaml"
    config.write_text(config.read_text() + "\n# edited by the operator\n")
    again = install(root)
    assert again.returncode == 0, again.stderr
    assert "keeping the existing" in again.stdout and config.read_text().endswith("# edited by the operator\n")

    gone = install(root, "--uninstall")
    assert gone.returncode == 0, gone.stderr
    assert not (root / "opt/edge").exists() and not (root / "etc/systemd/system/edge.service").exists()
    assert config.exists()
    assert install(root, "--uninstall", "--purge").returncode == 0 and not (root / "etc/edge").exists()
