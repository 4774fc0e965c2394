"""The zone editor's server side: snippets, the candidate config spliced into the original text
(comments kept), the check with check-config's code, and saving beside the config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edge.preview.editor import Drawing, candidate_text, check_drawing, merged, save_beside, snippet

BASE = """\
# my cameras
state_dir: {state}
models:
  person:
    path: blazepose   # the real model
cameras:
  gate:
    source: {{type: file, path: {video}}}
    model: person
  yard:
    source:
      type: file
      path: {video}
    model: person
    masks:
      - [[0.0, 0.0], [0.2, 0.0], [0.2, 0.2]]
rules:
  at_gate:
    cameras: [gate]
    labels: [person]   # people only
  in_yard:
    cameras: [yard]
    zone: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]
  block_zone:
    cameras: [yard, gate]
    zone:
      - [0.1, 0.1]
      - [0.9, 0.1]
      - [0.9, 0.9]
    labels: [person]   # kept
  walk:
    kind: line
    cameras: [gate]
    line: [[0.5, 1.0], [0.5, 0.0]]   # drawn upwards
# after the rules
mqtt:
  enabled: false
"""

TRI = ((0.1, 0.2), (0.5, 0.2), (0.3, 0.6))
LINE = ((0.4, 0.9), (0.6, 0.1))


@pytest.fixture
def base(tmp_path: Path, demo_clip: Path) -> str:
    return BASE.format(state=tmp_path / "state", video=demo_clip)


CASES = [
    # (drawing, what the snippet says, where the candidate differs from the original)
    (
        Drawing("zone", "gate", TRI, "door", ("person",)),
        "rules:\n  door:\n    cameras: [gate]\n    labels: [person]\n    zone: [[0.1, 0.2], [0.5, 0.2], [0.3, 0.6]]\n",
        ("rules", "door"),
    ),
    (
        Drawing("zone", "gate", TRI, "at_gate"),
        "rules:\n  at_gate:\n    zone: [[0.1, 0.2], [0.5, 0.2], [0.3, 0.6]]\n",
        ("rules", "at_gate", "zone"),
    ),
    (
        Drawing("zone", "yard", TRI, "in_yard"),
        "rules:\n  in_yard:\n    zone: [[0.1, 0.2], [0.5, 0.2], [0.3, 0.6]]\n",
        ("rules", "in_yard", "zone"),
    ),
    (
        Drawing("zone", "yard", TRI, "block_zone"),
        "rules:\n  block_zone:\n    zone: [[0.1, 0.2], [0.5, 0.2], [0.3, 0.6]]\n",
        ("rules", "block_zone", "zone"),
    ),
    (
        Drawing("line", "gate", LINE, "counter", ("person",)),
        "rules:\n  counter:\n    kind: line\n    cameras: [gate]\n    labels: [person]\n    line: [[0.4, 0.9], [0.6, 0.1]]\n",
        ("rules", "counter", "line"),
    ),
    (
        Drawing("line", "gate", LINE, "walk"),
        "rules:\n  walk:\n    line: [[0.4, 0.9], [0.6, 0.1]]\n",
        ("rules", "walk", "line"),
    ),
    (
        Drawing("mask", "yard", TRI),
        "cameras:\n  yard:\n    masks:\n      - [[0.1, 0.2], [0.5, 0.2], [0.3, 0.6]]\n",
        ("cameras", "yard", "masks"),
    ),
    (
        Drawing("mask", "gate", TRI),
        "cameras:\n  gate:\n    masks:\n      - [[0.1, 0.2], [0.5, 0.2], [0.3, 0.6]]\n",
        ("cameras", "gate", "masks"),
    ),
]


@pytest.mark.parametrize(("drawing", "want_snippet", "changed"), CASES)
def test_candidate_keeps_comments_and_means_original_plus_drawing(
    base: str, drawing: Drawing, want_snippet: str, changed: tuple[str, ...]
) -> None:
    data = yaml.safe_load(base)
    existing = drawing.kind != "mask" and drawing.rule in data["rules"]
    assert snippet(drawing, existing) == want_snippet
    out = candidate_text(base, drawing)
    assert yaml.safe_load(out) == merged(data, drawing)
    assert not out.startswith("# written by edge preview")
    for comment in ("# my cameras", "# the real model", "# people only", "# after the rules", "# kept"):
        assert comment in out  # spliced into the text, not written out again
    node: object = yaml.safe_load(out)
    for key in changed:
        assert isinstance(node, dict)
        node = node[key]
    assert node is not None


def test_a_config_without_rules_gets_a_rules_section(base: str) -> None:
    text = base.split("rules:", maxsplit=1)[0] + "mqtt:\n  enabled: false\n"
    out = candidate_text(text, Drawing("zone", "gate", TRI, "door"))
    assert yaml.safe_load(out)["rules"] == {"door": {"cameras": ["gate"], "zone": [list(p) for p in TRI]}}
    assert out.startswith("# my cameras")


def test_a_flow_style_config_is_written_out_again_but_means_the_same() -> None:
    text = "{models: {m: {path: x}}, cameras: {c: {source: {type: file, path: a.mp4}, model: m}}}\n"
    d = Drawing("mask", "c", TRI)
    out = candidate_text(text, d)
    assert out.startswith("# written by edge preview")
    assert yaml.safe_load(out) == merged(yaml.safe_load(text), d)


@pytest.mark.parametrize(
    ("drawing", "problem"),
    [
        (Drawing("zone", "gate", TRI[:2], "door"), "at least 3 points"),
        (Drawing("zone", "gate", TRI, ""), "the rule needs a name"),
        (Drawing("zone", "gate", TRI, "bad name!"), "the rule needs a name"),
        (Drawing("zone", "gate", TRI, "door", ("person",)), None),
        (Drawing("mask", "yard", TRI), None),
        (Drawing("line", "gate", LINE, "counter"), None),
        (Drawing("line", "gate", LINE, "walk"), None),
        (Drawing("line", "gate", TRI, "counter"), "a line is 2 points"),
        (Drawing("line", "gate", LINE[:1], "counter"), "a line is 2 points"),
        (Drawing("line", "gate", LINE, ""), "the rule needs a name"),
        (Drawing("line", "gate", LINE, "at_gate"), "is of kind presence: it takes a zone"),
        (Drawing("zone", "gate", TRI, "walk"), "is of kind line: it takes a line"),
        (Drawing("line", "gate", ((0.5, 0.5), (0.5, 0.5)), "dot"), "the same"),
        # a self-crossing zone is refused by the schema, as check-config refuses it
        (Drawing("zone", "gate", ((0.1, 0.1), (0.9, 0.9), (0.9, 0.1), (0.1, 0.9)), "bow"), "zone"),
    ],
)
def test_check_uses_check_configs_code(base: str, drawing: Drawing, problem: str | None) -> None:
    result = check_drawing(base, "edge.yaml", drawing)
    if problem is None:
        assert result.ok, result.problems
        assert result.candidate
    else:
        assert not result.ok
        assert any(problem in p for p in result.problems), result.problems


def test_problems_name_the_file_and_line(base: str) -> None:
    broken = base.replace("path: blazepose", "path: no_such_model")
    result = check_drawing(broken, "/etc/edge/edge.yaml", Drawing("mask", "yard", TRI))
    assert not result.ok
    assert any(p.startswith("/etc/edge/edge.yaml:") and "no_such_model" in p for p in result.problems)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"kind": "circle", "camera": "c", "points": []}, "kind"),
        ({"kind": "zone", "camera": "c", "points": "0,0"}, "points"),
        ({"kind": "zone", "camera": "c", "points": [[0, 0, 0]]}, "[x, y]"),
        ({"kind": "zone", "camera": "c", "points": [[0, "a"]]}, "[x, y]"),
        ({"kind": "zone", "camera": "c", "points": [[0, 0]] * 65}, "at most 64"),
        ({"kind": "zone", "camera": "c", "points": [], "labels": [1]}, "labels"),
        ([], "JSON object"),
    ],
)
def test_bad_drawings_from_the_page(data: object, error: str) -> None:
    with pytest.raises(ValueError, match=None) as exc:
        Drawing.from_json(data)
    assert error in str(exc.value)


def test_points_are_clamped_and_rounded() -> None:
    d = Drawing.from_json(
        {
            "kind": "zone",
            "camera": "c",
            "rule": " r ",
            "points": [[-0.2, 1.7], [0.12345, 0.5]],
            "labels": "a, b",
        }
    )
    assert d.points == ((0.0, 1.0), (0.123, 0.5))
    assert d.rule == "r"
    assert d.labels == ("a", "b")


def test_save_writes_beside_and_never_over(tmp_path: Path) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text("original\n")
    first = save_beside(config, "one\n", clock=0.0)
    second = save_beside(config, "two\n", clock=0.0)  # the same second: a new name
    assert first.parent == second.parent == tmp_path
    assert first != second
    assert first.read_text() == "one\n"
    assert second.read_text() == "two\n"
    assert config.read_text() == "original\n"
    assert first.name.startswith("edge.preview-") and first.suffix == ".yaml"


@pytest.mark.parametrize(
    ("rule", "labels"),
    [
        ("on", ()),  # plain, it would read back as true
        ("door", ("no", "a: b", "x]", "person", "yes")),
        ("n-1", ("100",)),  # a number, plain
    ],
)
def test_snippet_reads_back_as_what_was_drawn(rule: str, labels: tuple[str, ...]) -> None:
    d = Drawing("zone", "gate", TRI, rule, labels)
    want_rule: dict[str, object] = {"cameras": ["gate"], "zone": [list(p) for p in TRI]}
    if labels:
        want_rule = {"cameras": ["gate"], "labels": list(labels), "zone": [list(p) for p in TRI]}
    assert yaml.safe_load(snippet(d, existing_rule=False)) == {"rules": {rule: want_rule}}
    assert yaml.safe_load(snippet(Drawing("mask", "on", TRI), False)) == {
        "cameras": {"on": {"masks": [[list(p) for p in TRI]]}}
    }


def test_a_rule_of_other_cameras_is_not_changed(base: str) -> None:
    result = check_drawing(base, "edge.yaml", Drawing("zone", "gate", TRI, "in_yard"))
    assert not result.ok
    assert "rule 'in_yard' does not watch camera 'gate' (its cameras: yard)" in result.problems[0]


def test_a_rule_on_several_cameras_says_so(base: str) -> None:
    result = check_drawing(base, "edge.yaml", Drawing("zone", "yard", TRI, "block_zone"))
    assert result.ok, result.problems
    assert result.note == "rule 'block_zone' also uses this zone on camera(s) gate"


def test_a_config_that_no_longer_parses_is_one_problem(base: str) -> None:
    result = check_drawing(base + "rules: [unclosed\n", "edge.yaml", Drawing("mask", "yard", TRI))
    assert not result.ok
    assert result.problems[0].startswith("edge.yaml: the config no longer parses as YAML (line")


def test_a_rewritten_config_says_its_comments_are_lost(tmp_path: Path, demo_clip: Path) -> None:
    text = f"# gone\n{{models: {{m: {{path: blazepose}}}}, cameras: {{c: {{source: {{type: file, path: '{demo_clip}'}}, model: m}}}}, state_dir: '{tmp_path}'}}\n"
    result = check_drawing(text, "edge.yaml", Drawing("mask", "c", TRI))
    assert result.ok, result.problems
    assert "comments are not kept" in result.note


def test_saved_file_is_no_more_readable_than_the_config(tmp_path: Path) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text("x: 1\n")
    config.chmod(0o600)
    saved = save_beside(config, "x: 2\n")
    assert saved.stat().st_mode & 0o777 == 0o600
