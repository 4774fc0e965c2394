"""Config loading: table-driven, valid and invalid cases in one table; every error names the
field path and the file line (or the --set override) it came from."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from edge.cli import main
from edge.config import parse_config
from edge.errors import ConfigError

BASE = textwrap.dedent(
    """\
    state_dir: ./state
    models:
      person:
        path: blazepose
    cameras:
      door:
        source:
          type: rtsp
          url: rtsp://admin:hunter2@10.0.0.5/stream1
        model: person
        masks:
          - [[0, 0], [0.2, 0], [0.2, 0.2]]
    rules:
      door_person:
        cameras: [door]
        labels: [person]
        zone: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
        cooldown: 30s
    mqtt:
      host: localhost
      password: ${MQTT_PASSWORD:-changeme}
    """
)


def edit(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new)


CASES = [
    # (id, text, overrides, expected error substrings or None when valid)
    ("valid", BASE, [], None),
    ("unknown key", edit("    model: person\n", "    model: person\n    modle: x\n"), [],
     ["x.yaml:11: cameras.door.modle: unknown key"]),
    ("wrong type", edit("  host: localhost", "  host: localhost\n  port: lots"), [],
     ["x.yaml:21: mqtt.port: Input should be a valid integer"]),
    ("missing model", edit("    model: person\n", "    model: yolo8n\n"), [],
     ["x.yaml:10: cameras.door.model: unknown model 'yolo8n'"]),
    ("unknown camera in rule", edit("cameras: [door]", "cameras: [door, gate]"), [],
     ["x.yaml:15: rules.door_person.cameras.1: unknown camera 'gate'"]),
    ("polygon outside frame", edit("[0.9, 0.9], [0.1, 0.9]]", "[1.9, 0.9], [0.1, 0.9]]"), [],
     ["x.yaml:17: rules.door_person.zone: point 2 (1.9, 0.9) is outside [0, 1]"]),
    ("self-crossing polygon", edit("[0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]", "[0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]"), [],
     ["rules.door_person.zone: the polygon crosses itself"]),
    ("two-point mask", edit("[[0, 0], [0.2, 0], [0.2, 0.2]]", "[[0, 0], [0.2, 0]]"), [],
     ["x.yaml:12: cameras.door.masks.0: a polygon needs at least 3 points"]),
    ("unknown source type", edit("type: rtsp", "type: usb"), [],
     ["x.yaml:8: cameras.door.source.type: unknown type 'usb'"]),
    ("bad duration", edit("cooldown: 30s", "cooldown: soon"), [],
     ["x.yaml:18: rules.door_person.cooldown: not a duration: 'soon'"]),
    ("missing required field", edit("      url: rtsp://admin:hunter2@10.0.0.5/stream1\n", ""), [],
     ["cameras.door.source.url: Field required"]),
    ("bad name", edit("  door_person:", "  door person:"), [], ["rules.door person: String should match pattern"]),
    ("unset env var", edit("${MQTT_PASSWORD:-changeme}", "${EDGE_TEST_UNSET_VAR}"), [],
     ["x.yaml:21: mqtt.password: environment variable EDGE_TEST_UNSET_VAR is not set"]),
    ("invalid yaml", edit("    labels: [person]", "    labels: [person"), [], ["x.yaml:"]),
    ("override ok", BASE, ["mqtt.port=18830", "state_dir=/tmp/s", "rules.door_person.min_score=0.7"], None),
    ("override wrong type", BASE, ["mqtt.port=abc"], ["--set mqtt.port=abc: mqtt.port: Input should be a valid integer"]),
    ("override unknown key", BASE, ["mqtt.hots=x"], ["--set mqtt.hots=x: mqtt.hots: unknown key"]),
    ("override malformed", BASE, ["mqtt.port"], ["--set mqtt.port: expected dotted.key=value"]),
    ("all errors at once", edit("    model: person\n", "    model: nope\n").replace("cooldown: 30s", "cooldown: x"), [],
     ["rules.door_person.cooldown"]),
]


@pytest.mark.parametrize(("text", "overrides", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_config_table(text: str, overrides: list[str], expected: list[str] | None) -> None:
    if expected is None:
        cfg = parse_config(text, "x.yaml", overrides, env={}).config
        assert cfg.rules["door_person"].cooldown == 30.0
        if overrides:
            assert cfg.mqtt.port == 18830 and str(cfg.state_dir) == "/tmp/s"
            assert cfg.rules["door_person"].min_score == 0.7
        return
    with pytest.raises(ConfigError) as info:
        parse_config(text, "x.yaml", overrides, env={})
    message = str(info.value)
    for fragment in expected:
        assert fragment in message, message


def test_secrets_come_from_env_and_are_never_printed() -> None:
    cfg = parse_config(BASE, "x.yaml", env={"MQTT_PASSWORD": "s3cret"}).config
    assert cfg.mqtt.password is not None and cfg.mqtt.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(cfg) and "s3cret" not in str(cfg.model_dump())


def test_check_config_cli_exit_codes(tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(BASE)
    assert main(["check-config", str(good)]) == 0
    out = capsys.readouterr()
    assert "OK: 1 model(s), 1 camera(s), 1 rule(s)" in out.out
    assert "hunter2" not in out.out + out.err

    bad = tmp_path / "bad.yaml"
    bad.write_text(edit("    model: person\n", "    model: yolo8n\n"))
    assert main(["check-config", str(bad)]) == 2
    assert f"{bad}:10: cameras.door.model: unknown model 'yolo8n'" in capsys.readouterr().err

    assert main(["check-config", str(good), "--set", "mqtt.port=99999"]) == 2
    assert "--set mqtt.port=99999: mqtt.port" in capsys.readouterr().err

    missing_pkg = tmp_path / "pkg.yaml"
    missing_pkg.write_text(BASE.replace("path: blazepose", "path: blazepos"))
    assert main(["check-config", str(missing_pkg)]) == 2
    assert f"{missing_pkg}:4: models.person.path: model 'blazepos' not found" in capsys.readouterr().err


def test_schema_command_prints_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False
    assert {"models", "cameras", "rules", "mqtt", "state_dir"} <= set(schema["properties"])


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    os.environ.setdefault("CAM_USER", "viewer")
    os.environ.setdefault("CAM_PASS", "secret")
    assert main(["check-config", str(path)]) == 0, capsys.readouterr().err
    assert "secret" not in capsys.readouterr().out
