"""The ``command`` action with real programs: small Python scripts written into tmp_path and run
by ``sys.executable``. The environment a program gets (event fields, the rule's ``env``, and no
secrets of the daemon), arguments passed without a shell, the events filter, exit codes, the
timeout that ends the whole process group, the concurrency limit, the bounded queue, programs
that cannot start, and close. Conditions are waited for, never timed."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_until

from edge.alerts.actions import Action, EventEnvelope
from edge.alerts.command import CommandAction, CommandFigures
from edge.config.schema import CommandConfig

WAIT = 60.0  # generous: the machine may be busy
PY = sys.executable


def payload(**fields: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "schema": 1,
        "id": "ev-1",
        "type": "new",
        "device": "edge-1",
        "camera": "front",
        "rule": "door",
        "label": "person",
        "score": 0.875,
        "box": [10.5, 20.0, 110.25, 220.0],
        "count": 2,
        "ts": "2026-12-01T21:00:00.123Z",
    }
    p.update(fields)
    return p


def event(**fields: Any) -> EventEnvelope:
    return EventEnvelope(payload(**fields))


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("import json, os, signal, subprocess, sys, time\n" + body)
    return str(path)


def cmd(*argv: str, timeout: float = 30.0, events: list[str] | None = None, **env: str) -> CommandConfig:
    data: dict[str, Any] = {"argv": list(argv), "timeout": timeout, "env": env}
    if events is not None:
        data["events"] = events
    return CommandConfig.model_validate(data)


@pytest.fixture
def make_action() -> Iterator[Any]:
    made: list[CommandAction] = []

    def make(
        commands: Mapping[str, CommandConfig], concurrency: int = 2, queue_size: int = 100
    ) -> CommandAction:
        action = CommandAction(commands, concurrency, queue_size)
        made.append(action)
        return action

    yield make
    for action in made:
        action.close(timeout=0.0)


def finished(action: CommandAction) -> int:
    f = action.figures()
    return f.succeeded + f.failed + f.timed_out


def gone(pid: int) -> bool:
    """The process has ended: no longer there, or a zombie nobody has reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_is_an_action(make_action: Any) -> None:
    action: Action = make_action({})
    assert action.name == "command"
    assert action.files_removed == 0
    action.tick()


FULL = payload(
    id="ev-42",
    type="cross",
    kind="line",
    top_score=0.9,
    track_id=7,
    direction="in",
    duration=3.5,
    zones=["porch", "gate"],
)
BARE = payload(box=None, score=None, count=None)


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (
            FULL,
            {
                "EDGE_EVENT_ID": "ev-42",
                "EDGE_EVENT_TYPE": "cross",
                "EDGE_RULE_KIND": "line",
                "EDGE_DEVICE": "edge-1",
                "EDGE_CAMERA": "front",
                "EDGE_RULE": "door",
                "EDGE_LABEL": "person",
                "EDGE_SCORE": "0.875",
                "EDGE_TOP_SCORE": "0.9",
                "EDGE_TRACK_ID": "7",
                "EDGE_DIRECTION": "in",
                "EDGE_COUNT": "2",
                "EDGE_TS": "2026-12-01T21:00:00.123Z",
                "EDGE_DURATION": "3.5",
                "EDGE_BOX": "10.5,20.0,110.25,220.0",
                "EDGE_ZONES": "porch,gate",
            },
        ),
        (
            BARE,  # fields a kind does not have, and None values: empty strings
            {
                "EDGE_EVENT_TYPE": "new",
                "EDGE_RULE_KIND": "",
                "EDGE_SCORE": "",
                "EDGE_TOP_SCORE": "",
                "EDGE_TRACK_ID": "",
                "EDGE_DIRECTION": "",
                "EDGE_COUNT": "",
                "EDGE_DURATION": "",
                "EDGE_BOX": "",
                "EDGE_ZONES": "",
            },
        ),
    ],
    ids=["full", "bare"],
)
def test_environment(
    tmp_path: Path,
    make_action: Any,
    monkeypatch: pytest.MonkeyPatch,
    p: dict[str, Any],
    expected: dict[str, str],
) -> None:
    monkeypatch.setenv("MQTT_PASSWORD", "hunter2")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("TZ", "Europe/Berlin")
    monkeypatch.delenv("LC_ALL", raising=False)
    out = tmp_path / "env.json"
    dump = script(tmp_path, "dump.py", "json.dump(dict(os.environ), open(sys.argv[1], 'w'))\n")
    action = make_action({"door": cmd(PY, dump, str(out), events=["new", "cross"], GREETING="hello")})
    assert action.handle(EventEnvelope(p)) is True
    wait_until(lambda: finished(action) == 1, WAIT, "the program to end")
    assert action.figures().succeeded == 1
    got = json.loads(out.read_text())
    for name, value in expected.items():
        assert got[name] == value, name
    assert json.loads(got["EDGE_EVENT_JSON"]) == p
    assert got["GREETING"] == "hello"
    assert "MQTT_PASSWORD" not in got
    assert got["LANG"] == "C.UTF-8"
    assert got["TZ"] == "Europe/Berlin"
    assert got["PATH"] == os.environ["PATH"]
    allowed = {"PATH", "HOME", "LANG", "TZ", "GREETING"}
    # LC_CTYPE: Python's own UTF-8 coercion may add it in the child (PEP 538)
    assert {k for k in got if not k.startswith("EDGE_")} - allowed <= {"LC_CTYPE"}


def test_rule_env_wins(tmp_path: Path, make_action: Any) -> None:
    out = tmp_path / "env.json"
    dump = script(tmp_path, "dump.py", "json.dump(dict(os.environ), open(sys.argv[1], 'w'))\n")
    action = make_action({"door": cmd(PY, dump, str(out), EDGE_CAMERA="renamed")})
    action.handle(event())
    wait_until(lambda: finished(action) == 1, WAIT, "the program to end")
    assert json.loads(out.read_text())["EDGE_CAMERA"] == "renamed"


@pytest.mark.parametrize(
    "hostile",
    ["; touch {tmp}/pwned", "$(touch {tmp}/pwned)", "`touch {tmp}/pwned`", "a && touch {tmp}/pwned | cat"],
)
def test_arguments_reach_the_program_literally(tmp_path: Path, make_action: Any, hostile: str) -> None:
    arg = hostile.format(tmp=tmp_path)
    out = tmp_path / "argv.json"
    dump = script(tmp_path, "argv.py", "json.dump(sys.argv[2:], open(sys.argv[1], 'w'))\n")
    action = make_action({"door": cmd(PY, dump, str(out), arg, "two words")})
    action.handle(event())
    wait_until(lambda: finished(action) == 1, WAIT, "the program to end")
    assert json.loads(out.read_text()) == [arg, "two words"]
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    ("events", "rule", "kind", "taken"),
    [
        (None, "door", "new", True),  # default events: new and cross
        (None, "door", "cross", True),
        (None, "door", "update", False),
        (None, "door", "end", False),
        (["end"], "door", "end", True),
        (["end"], "door", "new", False),
        (["new", "update", "end", "cross"], "door", "update", True),
        (None, "yard", "new", False),  # a rule without a command
    ],
)
def test_events_filter(
    tmp_path: Path, make_action: Any, events: list[str] | None, rule: str, kind: str, taken: bool
) -> None:
    action = make_action({"door": cmd(PY, "-c", "pass", events=events)})
    assert action.handle(event(rule=rule, type=kind)) is taken
    if taken:
        wait_until(lambda: finished(action) == 1, WAIT, "the program to end")
    assert action.figures().started == int(taken)


def test_exit_codes(tmp_path: Path, make_action: Any, caplog: pytest.LogCaptureFixture) -> None:
    exits = script(
        tmp_path,
        "exits.py",
        "print('first line'); print('boom: the last line', flush=True)\n"
        "code = int(os.environ['CODE'])\n"
        "if code < 0: os.kill(os.getpid(), -code)\n"
        "sys.exit(code)\n",
    )
    runs = [("ok", 0), ("bad", 3), ("bad2", 3), ("signalled", -int(signal.SIGUSR1))]
    action = make_action({name: cmd(PY, exits, CODE=str(code)) for name, code in runs})
    with caplog.at_level(logging.WARNING, logger="edge.command"):
        for name, _ in runs:
            assert action.handle(event(rule=name)) is True
        wait_until(lambda: finished(action) == len(runs), WAIT, "the programs to end")
    f = action.figures()
    assert f == CommandFigures(
        started=4,
        succeeded=1,
        failed=3,
        timed_out=0,
        dropped=0,
        running=0,
        queued=0,
        exit_codes=((-int(signal.SIGUSR1), 1), (0, 1), (3, 2)),
    )
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    bad = next(m for m in lines if "rule bad:" in m)
    assert PY in bad
    assert "exited with code 3" in bad
    assert "boom: the last line" in bad
    assert "first line" not in bad
    assert any("killed by signal SIGUSR1" in m for m in lines)
    assert all(r.exc_info is None for r in caplog.records)


@pytest.fixture(params=["pidfd", "polling"])
def child_watch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of noticing a program's end: a pidfd, and polling where pidfd_open is missing."""
    if request.param == "polling":
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    return str(request.param)


def test_only_the_last_output_is_kept_and_the_pipe_never_blocks(
    child_watch: str, tmp_path: Path, make_action: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # 4 MiB of output: far more than a pipe holds; the program ends because the pipe is read
    chatty = script(
        tmp_path, "chatty.py", "sys.stdout.write('x' * 4_000_000 + '\\nlast words\\n'); sys.exit(1)\n"
    )
    action = make_action({"door": cmd(PY, chatty)})
    with caplog.at_level(logging.WARNING, logger="edge.command"):
        action.handle(event())
        wait_until(lambda: finished(action) == 1, WAIT, "the program to end")
    assert action.figures().exit_codes == ((1, 1),)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.endswith("last output: last words")


@pytest.mark.parametrize("obeys_sigterm", [True, False], ids=["obeys-sigterm", "ignores-sigterm"])
def test_timeout_ends_the_process_group(
    child_watch: str, tmp_path: Path, make_action: Any, obeys_sigterm: bool, caplog: pytest.LogCaptureFixture
) -> None:
    pidfile = tmp_path / "child.pid"
    ignore = "" if obeys_sigterm else "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    slow = script(
        tmp_path,
        "slow.py",
        ignore + "child = subprocess.Popen(['sleep', '60'])\n"
        "open(sys.argv[1] + '.part', 'w').write(str(child.pid)); os.replace(sys.argv[1] + '.part', sys.argv[1])\n"
        "print('waiting', flush=True)\n"
        "time.sleep(60)\n",
    )
    action = make_action({"door": cmd(PY, slow, str(pidfile), timeout=0.5)})
    with caplog.at_level(logging.WARNING, logger="edge.command"):
        action.handle(event())
        wait_until(pidfile.exists, WAIT, "the program to start its child")
        child = int(pidfile.read_text())
        wait_until(lambda: action.figures().timed_out == 1, WAIT, "the timeout")
        wait_until(lambda: gone(child), WAIT, f"the grandchild {child} to end")
    f = action.figures()
    assert (f.timed_out, f.failed, f.succeeded, f.running, f.exit_codes) == (1, 0, 0, 0, ())
    (line,) = [r.getMessage() for r in caplog.records]
    assert "rule door" in line
    assert "after its timeout of 0.5 s; its process group was killed" in line
    assert "last output: waiting" in line


def test_concurrency_limit(tmp_path: Path, make_action: Any) -> None:
    work = tmp_path / "work"
    work.mkdir()
    blocker = script(
        tmp_path,
        "block.py",
        "d, n = sys.argv[1], os.environ['EDGE_EVENT_ID']\n"
        "open(f'{d}/running-{n}', 'w').close()\n"
        "seen = len([f for f in os.listdir(d) if f.startswith('running-')])\n"
        "open(f'{d}/seen-{n}', 'w').write(str(seen))\n"
        "while not os.path.exists(f'{d}/release'): time.sleep(0.02)\n"
        "os.remove(f'{d}/running-{n}')\n",
    )
    action = make_action({"door": cmd(PY, blocker, str(work))}, concurrency=2)

    def files(prefix: str) -> list[Path]:
        return [f for f in work.iterdir() if f.name.startswith(prefix)]

    for n in range(5):
        assert action.handle(event(id=str(n))) is True
    wait_until(lambda: len(files("running-")) == 2, WAIT, "two programs running")
    for _ in range(10):  # while they block, no third one starts
        assert len(files("running-")) == 2
        f = action.figures()
        assert (f.running, f.queued, f.started) == (2, 3, 2)
        time.sleep(0.05)
    (work / "release").touch()
    wait_until(lambda: action.figures().succeeded == 5, WAIT, "all five programs to end")
    assert files("running-") == []
    seen = [int(f.read_text()) for f in files("seen-")]
    assert len(seen) == 5
    assert max(seen) <= 2


def test_full_queue_drops_and_counts(
    tmp_path: Path, make_action: Any, caplog: pytest.LogCaptureFixture
) -> None:
    release = tmp_path / "release"
    blocker = script(tmp_path, "block.py", "while not os.path.exists(sys.argv[1]): time.sleep(0.02)\n")
    action = make_action({"door": cmd(PY, blocker, str(release))}, concurrency=1, queue_size=1)
    with caplog.at_level(logging.WARNING, logger="edge.command"):
        assert action.handle(event(id="a")) is True
        wait_until(lambda: action.figures().running == 1, WAIT, "the first program to start")
        for n in "bcd":  # b waits in the queue, c and d are dropped
            assert action.handle(event(id=n)) is True
        f = action.figures()
        assert (f.running, f.queued, f.dropped) == (1, 1, 2)
        release.touch()
        wait_until(lambda: action.figures().succeeded == 2, WAIT, "the two programs to end")
        assert action.handle(event(id="e")) is True  # room again
        wait_until(lambda: action.figures().succeeded == 3, WAIT, "the third program to end")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "command queue full (1 waiting)" in messages[0]
    assert "event c" in messages[0]
    assert "room again; 2 command(s) dropped" in messages[1]
    assert action.figures().dropped == 2


@pytest.mark.parametrize(
    ("program", "code", "reason"),
    [
        ("missing", 127, "No such file or directory"),
        ("not-executable", 126, "Permission denied"),
        ("a-directory", 126, "Permission denied"),
        ("missing-on-path", 127, "No such file or directory"),
    ],
)
def test_program_that_cannot_start(
    tmp_path: Path, make_action: Any, caplog: pytest.LogCaptureFixture, program: str, code: int, reason: str
) -> None:
    (tmp_path / "not-executable").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "a-directory").mkdir()
    argv0 = "edge-no-such-program-xyz" if program == "missing-on-path" else str(tmp_path / program)
    action = make_action({"door": cmd(argv0, "arg")})
    with caplog.at_level(logging.WARNING, logger="edge.command"):
        assert action.handle(event()) is True
        wait_until(lambda: finished(action) == 1, WAIT, "the attempt to end")
    f = action.figures()
    assert (f.started, f.failed, f.succeeded, f.exit_codes) == (1, 1, 0, ((code, 1),))
    (record,) = caplog.records
    assert record.exc_info is None
    assert f"cannot run {argv0}: {reason}" in record.getMessage()


def test_close_drops_queued_and_ends_the_running(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pidfile = tmp_path / "pid"
    stuck = script(
        tmp_path,
        "stuck.py",
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"  # needs the SIGKILL
        "open(sys.argv[1] + '.part', 'w').write(str(os.getpid())); os.replace(sys.argv[1] + '.part', sys.argv[1])\n"
        "time.sleep(120)\n",
    )
    action = CommandAction({"door": cmd(PY, stuck, str(pidfile), timeout=600)}, 1, 10)
    with caplog.at_level(logging.WARNING, logger="edge.command"):
        for n in range(3):
            action.handle(event(id=str(n)))
        wait_until(pidfile.exists, WAIT, "the first program to start")
        action.close(timeout=0.2)
        assert action.handle(event(id="late")) is True  # refused: counted as dropped
    pid = int(pidfile.read_text())
    wait_until(lambda: gone(pid), WAIT, "the stuck program to end")
    f = action.figures()
    assert (f.started, f.timed_out, f.dropped, f.running, f.queued) == (1, 1, 3, 0, 0)
    messages = [r.getMessage() for r in caplog.records]
    assert any("2 queued command(s) dropped" in m for m in messages)
    assert any("1 program(s) still running" in m for m in messages)
    assert any("closed: dropping commands" in m for m in messages)
    assert any("still running at close; its process group was killed" in m for m in messages)


def test_reconfigure_keeps_counters(tmp_path: Path, make_action: Any) -> None:
    out = tmp_path / "out"
    writer = script(tmp_path, "write.py", "open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')\n")
    action = make_action({"door": cmd(PY, writer, str(out), "old")})
    action.handle(event())
    wait_until(lambda: finished(action) == 1, WAIT, "the first program to end")
    action.reconfigure({"yard": cmd(PY, writer, str(out), "new")}, concurrency=1, queue_size=5)
    assert action.handle(event(rule="door")) is False
    assert action.handle(event(rule="yard")) is True
    wait_until(lambda: finished(action) == 2, WAIT, "the second program to end")
    assert out.read_text().split() == ["old", "new"]
    assert action.figures().succeeded == 2
