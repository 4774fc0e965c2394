"""tools/install.sh staged into a temporary root (--root: no user, no systemctl): installs a
venv with a working `edge`, the units, an example config and a 0600 secrets file; running it
again keeps the operator's config; --uninstall removes the program but keeps config and state.
A staged tree is for packaging: once copied to / (simulated by mounting it over /opt in a private
mount namespace) its `edge` runs and finds /opt/edge/models without EDGE_MODELS_DIR, no file in
it names the staging folder, and the models' download cache is not in it. The model search path
looks beside the venv edge runs in."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.models import default_search_dirs

REPO = Path(__file__).resolve().parent.parent
CHECKOUT_MODELS = REPO / "models"


def install(root: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "tools" / "install.sh"), "--root", str(root), "--system-site-packages", "--no-fetch",
         "--extras", "", *extra],
        capture_output=True, text=True, timeout=600, env=env,
    )


def staged_edge(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The staged console script, run by the staged venv's interpreter: its shebang names
    /opt/edge/venv, where it will be once the tree is copied to /."""
    venv = root / "opt/edge/venv"
    return subprocess.run([str(venv / "bin/python"), str(venv / "bin/edge"), *args],
                          capture_output=True, text=True, env=env, timeout=300)


def test_install_is_idempotent_and_uninstall_keeps_config(tmp_path: Path, models_dir: Path) -> None:
    root = tmp_path / "root"
    first = install(root)
    assert first.returncode == 0, first.stderr
    assert staged_edge(root, "--version").stdout.startswith("edge ")
    # Package data is installed too: the event schemas and the preview page.
    probe = "from importlib import resources; print(len((resources.files('edge.preview') / 'static' / 'app.js').read_bytes()))"
    page = subprocess.run([str(root / "opt/edge/venv/bin/python"), "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert page.returncode == 0 and int(page.stdout) > 1000, page.stderr
    assert (root / "etc/systemd/system/edge.service").read_text() == (REPO / "systemd/edge.service").read_text()
    assert (root / "etc/systemd/system/edge@.service").exists()
    assert (root / "opt/edge/models/blazepose/model.yaml").exists()
    env_file = root / "etc/edge/edge.env"
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"

    # The installed example config validates with the installed edge (secrets from edge.env).
    env = {**os.environ, "EDGE_MODELS_DIR": str(models_dir), "CAM_USER": "u", "CAM_PASS": "p"}
    check = staged_edge(root, "check-config", str(root / "etc/edge/edge.yaml"), env=env)
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


def _mount_ns_available() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True
    ).returncode == 0  # fmt: skip


def files_naming(tree: Path, text: str) -> list[Path]:
    needle = text.encode()
    return [p for p in tree.rglob("*") if p.is_file() and not p.is_symlink() and needle in p.read_bytes()]


def wheel_cache() -> Path:
    """Where this machine's model wheels are: the suite's cache, or the demo's (the demo fetches
    into edge's default cache, and a later suite then finds the models present and fetches
    nothing into its own); made when there is none yet."""
    candidates = [Path(os.environ["EDGE_CACHE_DIR"])] if os.environ.get("EDGE_CACHE_DIR") else []
    candidates += [REPO / ".cache" / "wheels", Path.home() / ".cache" / "edge" / "wheels"]
    for cache in candidates:
        if cache.is_dir() and any(cache.glob("*.whl")):
            return cache.resolve()
    candidates[0].mkdir(parents=True, exist_ok=True)
    return candidates[0].resolve()


@pytest.mark.slow
@pytest.mark.skipif(not _mount_ns_available(), reason="needs unshare -m (root) to put the staged tree at /opt")
def test_staged_tree_works_once_copied_to_root(tmp_path: Path, models_dir: Path) -> None:
    # The download cache is edge's default (XDG_CACHE_HOME/edge/wheels), here the suite's cache.
    xdg = tmp_path / "xdg"
    (xdg / "edge").mkdir(parents=True)
    (xdg / "edge" / "wheels").symlink_to(wheel_cache())
    env = {k: v for k, v in os.environ.items() if k not in ("EDGE_CACHE_DIR", "EDGE_MODELS_DIR")}
    env |= {"XDG_CACHE_HOME": str(xdg), "CAM_USER": "u", "CAM_PASS": "p"}
    root = tmp_path / "stage"
    staged = subprocess.run(
        ["bash", str(REPO / "tools" / "install.sh"), "--root", str(root), "--system-site-packages", "--extras", ""],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert staged.returncode == 0, staged.stderr

    opt = root / "opt/edge"
    assert sorted(p.name for p in opt.iterdir()) == ["README.md", "models", "venv"]  # no download cache
    assert (opt / "models/blazepose/pose_detection.tflite").exists()
    assert files_naming(root, str(root)) == []
    assert (opt / "venv/bin/edge").read_text().startswith("#!/opt/edge/venv/bin/python\n")

    # At /: the console script runs, and check-config and `models fetch` find /opt/edge/models
    # with no EDGE_MODELS_DIR and no ./models (the unit sets EDGE_MODELS_DIR; a shell does not).
    work = tmp_path / "work"
    work.mkdir()
    script = (f"mount --bind {root / 'opt'} /opt && /opt/edge/venv/bin/edge check-config {root / 'etc/edge/edge.yaml'}"
              " && /opt/edge/venv/bin/edge models fetch blazepose")
    at_root = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                             cwd=work, capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert at_root.returncode == 0, at_root.stderr
    assert ": OK: 1 model(s)" in at_root.stdout
    assert "(0 extracted, 2 already present)" in at_root.stdout
    assert list(work.iterdir()) == []


def venv_layout(tmp_path: Path, *, models_beside: bool) -> Path:
    """An installed layout: sys.prefix opt/edge/venv, maybe opt/edge/models beside it."""
    prefix = tmp_path / "opt/edge/venv"
    prefix.mkdir(parents=True)
    if models_beside:
        (tmp_path / "opt/edge/models").mkdir()
    return prefix


SEARCH_CASES = [
    # (in a venv, models/ beside it, EDGE_MODELS_DIR, config models_dir, expected order)
    (True, True, None, None, ["cwd", "beside", "checkout"]),
    (True, True, "env", "config", ["config", "env", "cwd", "beside", "checkout"]),
    (True, False, None, None, ["cwd", "checkout"]),  # no models/ beside the venv
    (False, True, None, None, ["cwd", "checkout"]),  # not a venv: sys.prefix /usr -> no /models
]


@pytest.mark.parametrize(("venv", "beside", "env_dir", "config_dir", "expected"), SEARCH_CASES)
def test_model_search_dirs_include_the_folder_beside_the_venv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, venv: bool, beside: bool, env_dir: str | None,
    config_dir: str | None, expected: list[str],
) -> None:
    prefix = venv_layout(tmp_path, models_beside=beside)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "prefix", str(prefix))
    monkeypatch.setattr(sys, "base_prefix", "/usr" if venv else str(prefix))
    names = {"cwd": work / "models", "beside": tmp_path / "opt/edge/models", "checkout": CHECKOUT_MODELS,
             "env": tmp_path / "env-models", "config": tmp_path / "config-models"}
    if env_dir:
        monkeypatch.setenv("EDGE_MODELS_DIR", str(names[env_dir]))
    else:
        monkeypatch.delenv("EDGE_MODELS_DIR", raising=False)
    extra = [names[config_dir]] if config_dir else [None]
    assert default_search_dirs(extra) == [names[n] for n in expected]
