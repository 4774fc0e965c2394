"""Config loading: table-driven, valid and invalid cases in one table; every error names the
field path and the file line (or the --set override) it came from."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path
from typing import Any

import pytest

from edge.cli import main
from edge.config import load_config, parse_config
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
    (
        "tracking scores out of order",
        BASE,
        ["cameras.door.tracking.low_score=0.7"],
        ["x.yaml:6: cameras.door.tracking: expected low_score <= high_score <= new_track_score, got 0.7, 0.5, 0.6"],
    ),
    (
        "unknown key",
        edit("    model: person\n", "    model: person\n    modle: x\n"),
        [],
        ["x.yaml:11: cameras.door.modle: unknown key"],
    ),
    (
        "wrong type",
        edit("  host: localhost", "  host: localhost\n  port: lots"),
        [],
        ["x.yaml:21: mqtt.port: Input should be a valid integer"],
    ),
    (
        "missing model",
        edit("    model: person\n", "    model: yolo8n\n"),
        [],
        ["x.yaml:10: cameras.door.model: unknown model 'yolo8n'"],
    ),
    (
        "unknown camera in rule",
        edit("cameras: [door]", "cameras: [door, gate]"),
        [],
        ["x.yaml:15: rules.door_person.cameras.1: unknown camera 'gate'"],
    ),
    (
        "polygon outside frame",
        edit("[0.9, 0.9], [0.1, 0.9]]", "[1.9, 0.9], [0.1, 0.9]]"),
        [],
        ["x.yaml:17: rules.door_person.zone: point 2 (1.9, 0.9) is outside [0, 1]"],
    ),
    (
        "self-crossing polygon",
        edit("[0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]", "[0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]"),
        [],
        ["rules.door_person.zone: the polygon crosses itself"],
    ),
    (
        "two-point mask",
        edit("[[0, 0], [0.2, 0], [0.2, 0.2]]", "[[0, 0], [0.2, 0]]"),
        [],
        ["x.yaml:12: cameras.door.masks.0: a polygon needs at least 3 points"],
    ),
    (
        "unknown source type",
        edit("type: rtsp", "type: usb"),
        [],
        ["x.yaml:8: cameras.door.source.type: unknown type 'usb'"],
    ),
    (
        "bad duration",
        edit("cooldown: 30s", "cooldown: soon"),
        [],
        ["x.yaml:18: rules.door_person.cooldown: not a duration: 'soon'"],
    ),
    (
        "missing required field",
        edit("      url: rtsp://admin:hunter2@10.0.0.5/stream1\n", ""),
        [],
        ["cameras.door.source.url: Field required"],
    ),
    (
        "bad name",
        edit("  door_person:", "  door person:"),
        [],
        ["rules.door person: String should match pattern"],
    ),
    (
        "unset env var",
        edit("${MQTT_PASSWORD:-changeme}", "${EDGE_TEST_UNSET_VAR}"),
        [],
        ["x.yaml:21: mqtt.password: environment variable EDGE_TEST_UNSET_VAR is not set"],
    ),
    ("invalid yaml", edit("    labels: [person]", "    labels: [person"), [], ["x.yaml:"]),
    ("override ok", BASE, ["mqtt.port=18830", "state_dir=/tmp/s", "rules.door_person.min_score=0.7"], None),
    (
        "override wrong type",
        BASE,
        ["mqtt.port=abc"],
        ["--set mqtt.port=abc: mqtt.port: Input should be a valid integer"],
    ),
    ("override unknown key", BASE, ["mqtt.hots=x"], ["--set mqtt.hots=x: mqtt.hots: unknown key"]),
    (
        "input_size valid",
        edit("    path: blazepose\n", "    path: blazepose\n    input_size: [640, 384]\n"),
        [],
        None,
    ),
    (
        "input_size not a multiple of 32",
        edit("    path: blazepose\n", "    path: blazepose\n    input_size: [640, 360]\n"),
        [],
        ["x.yaml:5: models.person.input_size.1: expected a multiple of 32 (YOLO's largest stride), got 360"],
    ),
    (
        "input_size with one side",
        edit("    path: blazepose\n", "    path: blazepose\n    input_size: [640]\n"),
        [],
        ["x.yaml:5: models.person.input_size"],
    ),
    ("override malformed", BASE, ["mqtt.port"], ["--set mqtt.port: expected dotted.key=value"]),
    (
        "all errors at once",
        edit("    model: person\n", "    model: nope\n").replace("cooldown: 30s", "cooldown: x"),
        [],
        ["rules.door_person.cooldown"],
    ),
]


def test_tracking_block() -> None:
    default = parse_config(BASE, "x.yaml", env={}).config.cameras["door"].tracking
    assert default.enabled and default.confirm_frames == 3
    sets = ["cameras.door.tracking.lost_after=2s", "cameras.door.tracking.enabled=false"]
    tuned = parse_config(BASE, "x.yaml", sets, env={}).config.cameras["door"].tracking
    assert tuned.lost_after == 2.0 and not tuned.enabled


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


def test_check_config_cli_exit_codes(
    tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
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


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml")), ids=lambda p: p.name
)
def test_shipped_configs_are_valid(
    path: Path,
    models_dir: Path,
    demo_clip: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every shipped config passes check-config with all its checks (run from the checkout, as
    the README does: demo.yaml's clip is demo/demo.mp4, made by the demo_clip fixture)."""
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    monkeypatch.setenv("CAM_USER", "viewer")
    monkeypatch.setenv("CAM_PASS", "secret")
    assert main(["check-config", str(path)]) == 0, capsys.readouterr().err
    assert "secret" not in capsys.readouterr().out


ZONE_6000 = (
    "["
    + ", ".join(
        f"[{0.5 + 0.4 * math.cos(2 * math.pi * i / 6000):.6f}, {0.5 + 0.4 * math.sin(2 * math.pi * i / 6000):.6f}]"
        for i in range(6000)
    )
    + "]"
)
MODELS = "models:\n  face:\n    path: blazeface\n"
CAMERA = "cameras:\n  door:\n    model: face\n    source: {type: rtsp, url: 'rtsp://cam/1'}\n"


def bomb(levels: int) -> str:
    """9 aliases per level: 9**levels nodes once expanded, from half a kilobyte of YAML."""
    names = "abcdefghijk"
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"{names[i + 1]}: &{names[i + 1]} [{', '.join([f'*{names[i]}'] * 9)}]" for i in range(levels - 1)
    ]
    return MODELS + "extra:\n" + "".join(f"  {line}\n" for line in lines)


FAULTS: list[Any] = [
    # (id, file content (str or bytes), expected fragment of the one error line, or None when valid)
    # PyYAML >= 6.0.4 stops this itself ("exceeded maximum nesting depth"); older ones reach our limit
    ("deep flow nesting", MODELS + "x: " + "[" * 5000 + "]" * 5000 + "\n", "x.yaml:4: "),
    (
        "deep block nesting",
        MODELS + "".join("  " * i + f"k{i}:\n" for i in range(300)),
        "nested deeper than 64 levels",
    ),
    ("recursive sequence alias", MODELS + "x: &a [*a]\n", "x.yaml:4: x.0: recursive alias *a"),
    ("recursive mapping alias", MODELS + "x: &a {y: *a}\n", "x.yaml:4: x.y: recursive alias *a"),
    ("recursive merge key", MODELS + "x: &a {<<: *a}\n", "recursive alias *a"),
    ("alias bomb 6 levels", bomb(6), "the document expands to more than 50000 nodes"),
    ("alias bomb 9 levels", bomb(9), "the document expands to more than 50000 nodes"),
    (
        "aliases within bounds",
        MODELS + "cameras:\n  a: &cam {model: face, source: {type: rtsp, url: 'rtsp://c/1'}}\n  b: *cam\n",
        None,
    ),
    (
        "aliases nest too deep",
        MODELS + "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30 + "\n",
        "nested deeper than 64 levels (counting through aliases)",
    ),
    (
        "non-UTF-8 byte in a comment",
        b"# caf\xe9\n" + MODELS.encode(),
        "x.yaml:1: not UTF-8 text: byte 0xe9 at column 6",
    ),
    ("NUL byte", MODELS + "x: a\x00b\n", "x.yaml:4: invalid YAML: unacceptable character #x0000"),
    (
        "duplicate key",
        MODELS + CAMERA + "    fps: 10\n    fps: 2\n",
        "x.yaml:9: cameras.door.fps: duplicate key 'fps' (first at line 8)",
    ),
    (
        "duplicate key after normalising",
        MODELS + "rules: {}\nrules: {}\n",
        "x.yaml:5: rules: duplicate key 'rules' (first at line 4)",
    ),
    (
        "merge keys still work",
        "defaults: &d {path: blazeface}\nmodels:\n  face:\n    <<: *d\n    runner: litert\n",
        "x.yaml:1: defaults: unknown key",
    ),
    (
        "merge key override",
        MODELS
        + "cameras:\n  door:\n    <<: {model: face, fps: 2}\n    fps: 5\n    source: {type: rtsp, url: 'rtsp://c/1'}\n",
        None,
    ),
    ("two documents", MODELS + "---\nmodels: {}\n", "x.yaml:4: expected one YAML document"),
    (
        "huge integer",
        MODELS + "mqtt: {port: " + "9" * 5000 + "}\n",
        "x.yaml:4: mqtt.port: a number of 5000 digits is too large",
    ),
    (
        "impossible date",
        MODELS + "x: 2021-13-45\n",
        "x.yaml:4: invalid YAML: cannot read this value: month must be in 1..12",
    ),
    (
        "~unknown user",
        "models:\n  face:\n    path: ~nosuchuser/m.onnx\n",
        "x.yaml:3: models.face.path: no user 'nosuchuser' for '~nosuchuser'",
    ),
    (
        "long model path component",
        "models:\n  face:\n    path: /m/" + "a" * 300 + ".onnx\n",
        "models.face.path: a path component ('aaaa",
    ),
    (
        "long models_dir",
        MODELS + "models_dir: " + "/abc" * 1100 + "\n",
        "models_dir: the path is 4400 bytes long; at most 4095",
    ),
    (
        "long file source",
        MODELS + "cameras:\n  door:\n    model: face\n    source: {type: file, path: " + "b" * 256 + "}\n",
        "cameras.door.source.path: a path component",
    ),
    (
        "file source of 4096 bytes",
        MODELS
        + "cameras:\n  door:\n    model: face\n    source: {type: file, path: "
        + "/abc" * 1024
        + "}\n",
        "the path is 4096 bytes long",
    ),
    (
        "NUL in a path",
        MODELS + 'state_dir: "/tmp/a\\0b"\n',
        "x.yaml:4: state_dir: text cannot contain a NUL character",
    ),
    (
        "open_timeout .inf",
        MODELS
        + "cameras:\n  door:\n    model: face\n    source: {type: rtsp, url: 'rtsp://c/1', open_timeout: .inf}\n",
        "cameras.door.source.open_timeout: must be a finite number of seconds, got inf",
    ),
    (
        "open_timeout 1e300",
        MODELS
        + "cameras:\n  door:\n    model: face\n    source: {type: rtsp, url: 'rtsp://c/1', open_timeout: 1.0e+300}\n",
        "cameras.door.source.open_timeout: must be at most 1 h (3600 s), got 1e+300 s",
    ),
    (
        "read_timeout 1e15",
        MODELS
        + "cameras:\n  door:\n    model: face\n    source: {type: rtsp, url: 'rtsp://c/1', read_timeout: 1e15}\n",
        "cameras.door.source.read_timeout: must be at most 1 h (3600 s), got 1e+15 s",
    ),
    (
        "negative cooldown",
        MODELS + "rules:\n  r: {cameras: [door], cooldown: -5s}\n" + CAMERA,
        "rules.r.cooldown: must not be negative, got -5",
    ),
    (
        "NaN interval",
        MODELS + "status_interval: .nan\n",
        "status_interval: must be a finite number of seconds, got nan",
    ),
    (
        "cooldown of a month",
        MODELS + "rules:\n  r: {cameras: [door], cooldown: 720h}\n" + CAMERA,
        "rules.r.cooldown: must be at most 1 week",
    ),
    (
        "durations in bounds",
        MODELS
        + "status_interval: 1h\nrules:\n  r: {cameras: [door], cooldown: 168h, clear_after: 500ms}\n"
        + CAMERA,
        None,
    ),
    ("prefix with #", MODELS + "mqtt: {prefix: 'edge/#'}\n", "mqtt.prefix: holds the wildcard '#'"),
    ("prefix with +", MODELS + "mqtt: {prefix: 'a/+/b'}\n", "mqtt.prefix: holds the wildcard '+'"),
    (
        "prefix with NUL",
        MODELS + 'mqtt: {prefix: "a\\0b"}\n',
        "mqtt.prefix: text cannot contain a NUL character",
    ),
    (
        "prefix with a control character",
        MODELS + 'mqtt: {prefix: "a\\x01b"}\n',
        "mqtt.prefix: holds the control character",
    ),
    (
        "homeassistant prefix ha/#",
        MODELS + "mqtt: {homeassistant: {prefix: 'ha/#'}}\n",
        "mqtt.homeassistant.prefix: holds the wildcard '#'",
    ),
    (
        "prefix of 70k characters",
        MODELS + "mqtt: {prefix: '" + "a" * 70000 + "'}\n",
        "mqtt.prefix: is 70000 characters long; at most 256",
    ),
    (
        "prefix with an empty level",
        MODELS + "mqtt: {prefix: 'a//b'}\n",
        "mqtt.prefix: 'a//b' has an empty level",
    ),
    ("prefix with a trailing /", MODELS + "mqtt: {prefix: 'edge/'}\n", "has an empty level"),
    ("prefix starting with $", MODELS + "mqtt: {prefix: '$SYS/x'}\n", "must not start with '$'"),
    ("empty prefix", MODELS + "mqtt: {prefix: ''}\n", "mqtt.prefix: must not be empty"),
    ("empty host", MODELS + "mqtt: {host: ''}\n", "mqtt.host: must not be empty"),
    (
        "host with a space",
        MODELS + "mqtt: {host: 'bro ker'}\n",
        "mqtt.host: 'bro ker' is not a host name or address",
    ),
    ("good prefixes", MODELS + "mqtt: {prefix: 'site/7/edge', homeassistant: {prefix: 'ha'}}\n", None),
    (
        "zone of 6000 points",
        MODELS + CAMERA + "rules:\n  r:\n    cameras: [door]\n    zone: " + ZONE_6000 + "\n",
        "rules.r.zone: a polygon has at most 256 points, got 6000",
    ),
    (
        "config over 512 KiB",
        MODELS + "# " + "x" * (512 * 1024) + "\n",
        "x.yaml: the config is larger than 512 KiB",
    ),
]


@pytest.mark.parametrize(("content", "expected"), [c[1:] for c in FAULTS], ids=[c[0] for c in FAULTS])
def test_fuzzer_faults_are_one_line_errors(
    content: str | bytes, expected: str | None, tmp_path: Path
) -> None:
    """Each fault a user's fuzzing found is now one ``file:line: path: message`` (no traceback)."""
    path = tmp_path / "x.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    if expected is None:
        load_config(path, env={})
        return
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert any(expected.replace("x.yaml", str(path)) in line for line in info.value.issues), info.value.issues
    for line in info.value.issues:
        assert line.startswith(str(path)) and "\n" not in line and len(line) < 2000, line


POLYGONS = [
    # (points, expected error fragment or None)
    ([(0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)], None),
    ([(0.1, 0.1), (0.9, 0.9), (0.9, 0.1), (0.1, 0.9)], "the polygon crosses itself (edges 0 and 2)"),
    (
        [
            (0.5 + 0.4 * math.cos(2 * math.pi * i / 256), 0.5 + 0.4 * math.sin(2 * math.pi * i / 256))
            for i in range(256)
        ],
        None,
    ),
    (
        [
            (0.5 + 0.4 * math.cos(4 * math.pi * i / 255), 0.5 + 0.4 * math.sin(4 * math.pi * i / 255))
            for i in range(255)
        ],
        "the polygon crosses itself",
    ),
    (
        [
            (0.5 + 0.4 * math.cos(2 * math.pi * i / 257), 0.5 + 0.4 * math.sin(2 * math.pi * i / 257))
            for i in range(257)
        ],
        "a polygon has at most 256 points, got 257",
    ),
    ([(0.1, 0.1), (0.2, 0.2), (0.3, 0.3)], "the polygon has zero area"),
    ([(0.1, 0.1), (float("nan"), 0.2), (0.3, 0.1)], "point 1 (nan, 0.2) is outside [0, 1]"),
]


@pytest.mark.parametrize(("points", "expected"), POLYGONS)
def test_polygon_check_matches_the_pairwise_definition(
    points: list[tuple[float, float]], expected: str | None
) -> None:
    """The vectorised self-intersection check reports what the pairwise definition does."""
    text = MODELS + CAMERA + "rules:\n  r:\n    cameras: [door]\n    zone: " + json.dumps(points) + "\n"
    if expected is None:
        parse_config(text, "x.yaml", env={})
        return
    with pytest.raises(ConfigError) as info:
        parse_config(text, "x.yaml", env={})
    assert expected in str(info.value)
