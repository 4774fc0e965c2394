"""Rule config checks, table-driven: fields that belong to another kind, schedules the rules
could not run, commands that could never run, and what `edge check-config` says (file:line)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from edge.config import parse_config
from edge.config.schema import RuleConfig
from edge.errors import ConfigError

ZONE = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
LINE = [[0.5, 1.0], [0.5, 0.0]]

CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("presence", {"zone": ZONE}, None),
    ("line", {"kind": "line", "line": LINE, "line_margin": 0.05, "directions": ["in"]}, None),
    ("dwell", {"kind": "dwell", "dwell": "2m", "zone": ZONE}, None),
    ("count", {"kind": "count", "min_count": 8, "on_after": "10s", "off_after": "30s"}, None),
    ("absence", {"kind": "absence", "absent_after": "10m", "present_after": "5s"}, None),
    ("line without line", {"kind": "line"}, "needs `line"),
    ("line with zone", {"kind": "line", "line": LINE, "zone": ZONE}, "takes `line`, not `zone`"),
    ("line on presence", {"line": LINE}, "`line` is for rules of kind line"),
    ("dwell without dwell", {"kind": "dwell"}, "needs `dwell`"),
    ("dwell on count", {"kind": "count", "dwell": "5s"}, "`dwell` is for rules of kind dwell"),
    ("min_count on presence", {"min_count": 3}, "`min_count` is for rules of kind count, not presence"),
    ("off_after on absence", {"kind": "absence", "off_after": "5s"}, "`off_after` is for rules of kind count"),
    ("absent_after on count", {"kind": "count", "absent_after": "5s"}, "`absent_after` is for rules of kind absence"),
    ("directions on dwell", {"kind": "dwell", "dwell": 3, "directions": ["in"]}, "`directions` is for rules of kind line"),
    ("same line points", {"kind": "line", "line": [[0.5, 0.5], [0.5, 0.5]]}, "the same"),
    ("line outside frame", {"kind": "line", "line": [[0.5, 1.5], [0.5, 0.0]]}, "outside [0, 1]"),
    ("schedule", {"schedule": {"timezone": "Europe/Berlin", "windows": [{"days": ["mon"], "from": "22:00", "to": "06:00"}]}}, None),
    ("schedule 24:00 end", {"schedule": {"windows": [{"from": "00:00", "to": "24:00"}]}}, None),
    ("schedule 24:00 start", {"schedule": {"windows": [{"from": "24:00", "to": "06:00"}]}}, "`from: 24:00`"),
    ("schedule bad time", {"schedule": {"windows": [{"from": "7:00", "to": "9:00"}]}}, "'HH:MM'"),
    ("schedule bad zone", {"schedule": {"timezone": "Mars/Olympus", "windows": [{"from": "07:00", "to": "09:00"}]}}, "unknown time zone"),
    ("schedule bad day", {"schedule": {"windows": [{"days": ["monday"], "from": "07:00", "to": "09:00"}]}}, "days"),
    ("schedule no windows", {"schedule": {"windows": []}}, "windows"),
    ("command", {"command": {"argv": ["/bin/true"]}}, None),
    ("command for crossings", {"kind": "line", "line": LINE, "command": {"argv": ["x"], "events": ["cross"]}}, None),
    ("command cross on presence", {"command": {"argv": ["x"], "events": ["cross"]}}, "never makes cross events"),
    ("command new on line", {"kind": "line", "line": LINE, "command": {"argv": ["x"], "events": ["new"]}}, "never makes new events"),
    ("command update on absence", {"kind": "absence", "command": {"argv": ["x"], "events": ["update"]}}, "never makes update"),
    ("command empty argv", {"command": {"argv": []}}, "argv"),
    ("command bad env name", {"command": {"argv": ["x"], "env": {"A-B": "1"}}}, "env"),
    ("actions name command", {"actions": ["command"]}, "has no `command"),
    ("command left out", {"actions": ["mqtt"], "command": {"argv": ["x"]}}, "leave command out"),
    ("unknown action", {"actions": ["email"]}, "actions"),
    ("stationary only", {"stationary": "only"}, None),
    ("stationary bad", {"stationary": "sometimes"}, "stationary"),
]


@pytest.mark.parametrize(("name", "fields", "error"), CASES, ids=[c[0] for c in CASES])
def test_rule_fields(name: str, fields: dict[str, Any], error: str | None) -> None:
    data = {"cameras": ["cam"], **fields}
    if error is None:
        RuleConfig.model_validate(data)
        return
    with pytest.raises(ValidationError) as exc:
        RuleConfig.model_validate(data)
    assert error in str(exc.value), str(exc.value)


def config(rule: str, tracking: bool = True) -> str:
    return f"""\
models:
  m: {{path: blazepose}}
cameras:
  cam:
    source: {{type: file, path: a.mp4}}
    model: m
    tracking: {{enabled: {str(tracking).lower()}}}
rules:
  r:
    cameras: [cam]
{rule}"""


@pytest.mark.parametrize(
    ("rule", "tracking", "error"),
    [
        ("    kind: line\n    line: [[0.5, 1], [0.5, 0]]\n", True, None),
        ("    kind: line\n    line: [[0.5, 1], [0.5, 0]]\n", False, "edge.yaml:10: rules.r.cameras.0: camera 'cam' has `tracking: {enabled: false}`, but a rule of kind line"),
        ("    kind: dwell\n    dwell: 5s\n", False, "a rule of kind dwell follows objects over time"),
        ("    stationary: exclude\n", False, "`stationary: exclude` needs to know which objects stand still"),
        ("    kind: count\n    min_count: 2\n", False, None),  # counts detections when untracked
        ("    min_count: 2\n", True, "edge.yaml:9: rules.r: `min_count` is for rules of kind count"),
    ],
    ids=["line", "line untracked", "dwell untracked", "stationary untracked", "count untracked", "file line"],
)
def test_check_config_names_the_file_and_line(rule: str, tracking: bool, error: str | None) -> None:
    text = config(rule, tracking)
    if error is None:
        parse_config(text, "edge.yaml")
        return
    with pytest.raises(ConfigError) as exc:
        parse_config(text, "edge.yaml")
    assert any(error in issue for issue in exc.value.issues), exc.value.issues
