"""Local actions on a small disk: the event log rotates by size, snapshots are pruned by size and
age, write failures (a real full tmpfs, a folder that is a file) are counted and logged once per
streak and recover by themselves, a full queue drops and counts, and the dispatcher thread
survives any error. Real files in tmp_path; an injectable clock instead of sleeps."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import wait_until
from disks import fill, small_tmpfs
from pydantic import ValidationError

from edge.alerts.actions import (
    EVENT_LOG_KEEP,
    EVENT_LOG_MAX_BYTES,
    SNAPSHOTS_MAX_AGE,
    SNAPSHOTS_MAX_BYTES,
    Action,
    ActionDispatcher,
    EventEnvelope,
    EventLogAction,
    SnapshotAction,
)
from edge.alerts.retention import FolderRetention, RotatingFile
from edge.config.schema import ActionsConfig
from edge.rules.model import RuleStatus

DAY = 86400.0
T0 = 1_800_000_000.0  # an arbitrary wall-clock time for the injected clock


def payload(i: int, kind: str = "new", camera: str = "cam") -> dict[str, Any]:
    return {
        "id": f"{i:032x}",
        "type": kind,
        "camera": camera,
        "rule": "r",
        "label": "person",
        "score": 0.9,
        "box": [2, 2, 40, 40],
        "ts": f"2026-01-01T00:00:{i % 60:02d}.{i:06d}Z",
        "count": 1,
    }


def noise(seed: int = 0, size: int = 64) -> np.ndarray:
    """Random pixels: a JPEG that does not compress to nothing."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@contextlib.contextmanager
def running(actions: list[Action], **kwargs: Any) -> Iterator[ActionDispatcher]:
    dispatcher = ActionDispatcher(actions, **kwargs)
    dispatcher.start()
    try:
        yield dispatcher
    finally:
        dispatcher.close()


def drained(dispatcher: ActionDispatcher, handled: int) -> None:
    wait_until(lambda: dispatcher.figures().handled >= handled, 30, f"{handled} events handled")


def failure_logs(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith(f"action {name} failed")]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: a disk that really fills up."""
    with small_tmpfs(tmp_path / "small", "256k") as mount:
        yield mount


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected", "error"),
    [
        ({}, (EVENT_LOG_MAX_BYTES, EVENT_LOG_KEEP, SNAPSHOTS_MAX_BYTES, SNAPSHOTS_MAX_AGE), None),
        (
            {
                "event_log_max_bytes": "1MiB",
                "event_log_keep": 0,
                "snapshots": {"max_bytes": "2GiB", "max_age": "168h"},
            },
            (1024**2, 0, 2 * 1024**3, 7 * DAY),
            None,
        ),
        (
            {"event_log_max_bytes": 100_000, "snapshots": {"max_age": 0}},
            (100_000, 3, SNAPSHOTS_MAX_BYTES, 0.0),
            None,
        ),
        ({"event_log_max_bytes": "1KiB"}, None, "at least 64KiB"),
        ({"event_log_max_bytes": "lots"}, None, "could not parse"),
        ({"event_log_keep": -1}, None, "greater than or equal to 0"),
        ({"snapshots": {"max_bytes": "100KiB"}}, None, "at least 1MiB"),
        ({"snapshots": {"max_age": "soon"}}, None, "not a duration"),
        ({"event_log": {"max_bytes": 1}}, None, "valid boolean"),
    ],
)
def test_retention_config(
    raw: dict[str, Any], expected: tuple[int, int, int, float] | None, error: str | None
) -> None:
    """Old configs (``event_log: true``) keep working; the defaults are the constructors' defaults."""
    if error is not None:
        with pytest.raises(ValidationError, match=error):
            ActionsConfig.model_validate(raw)
        return
    cfg = ActionsConfig.model_validate(raw)
    assert (
        cfg.event_log_max_bytes,
        cfg.event_log_keep,
        cfg.snapshots.max_bytes,
        cfg.snapshots.max_age,
    ) == expected


# -- 1. the event log rotates by size ------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_bytes", "keep", "error"),
    [
        (1000, 3, None),
        (1000, 1, None),
        (1000, 0, None),
        (350, 2, None),
        (0, 3, ValueError),
        (1000, -1, ValueError),
    ],
)
def test_event_log_rotation_keeps_exactly_n_files_and_the_newest_lines(
    tmp_path: Path, max_bytes: int, keep: int, error: type[Exception] | None
) -> None:
    path = tmp_path / "state" / "events.jsonl"
    if error is not None:
        with pytest.raises(error):
            EventLogAction(path, max_bytes=max_bytes, keep=keep)
        return
    action = EventLogAction(path, max_bytes=max_bytes, keep=keep)
    n = 200
    with running([action]) as dispatcher:
        for i in range(n):
            assert dispatcher.submit(EventEnvelope(payload(i, "end")))
        drained(dispatcher, n)
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == sorted(["events.jsonl", *(f"events.jsonl.{k}" for k in range(1, keep + 1))])
    files = [path.with_name(f"events.jsonl.{k}") for k in range(keep, 0, -1)] + [path]
    assert all(f.stat().st_size <= max_bytes for f in files)
    ids = [json.loads(line)["id"] for f in files for line in f.read_text().splitlines()]
    assert ids and ids == [payload(i)["id"] for i in range(n - len(ids), n)]  # the newest, in order
    line = len(json.dumps(payload(0, "end"), sort_keys=True)) + 1
    assert len(ids) > (keep + 1) * (max_bytes // line - 1)  # only whole-file rotations lost lines
    figures = dispatcher.figures()
    assert figures.failures == (("event_log", 0),) and figures.files_removed > 0


def test_rotation_continues_an_existing_log_and_gives_an_oversized_record_its_own_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"x" * 90 + b"\n")
    log = RotatingFile(path, max_bytes=100, keep=2)
    log.append(b"y" * 20 + b"\n")  # 91 + 21 > 100: the existing file rotates first
    log.append(b"z" * 300 + b"\n")  # larger than max_bytes: alone in a file
    log.append(b"w\n")
    log.close()
    assert path.read_bytes() == b"w\n"
    assert log.rotated(1).read_bytes() == b"z" * 300 + b"\n"
    assert log.rotated(2).read_bytes() == b"y" * 20 + b"\n"
    assert not log.rotated(3).exists() and log.files_removed == 1


def test_removed_files_stay_counted_after_a_reload(tmp_path: Path) -> None:
    action = EventLogAction(tmp_path / "events.jsonl", max_bytes=300, keep=1)
    with running([action]) as dispatcher:
        for i in range(20):
            dispatcher.submit(EventEnvelope(payload(i, "end")))
        drained(dispatcher, 20)
        removed = dispatcher.figures().files_removed
        assert removed > 0
        dispatcher.replace_actions([EventLogAction(tmp_path / "other.jsonl")])
        dispatcher.submit(EventEnvelope(payload(99, "end")))
        drained(dispatcher, 21)
        assert dispatcher.figures().files_removed == removed


# -- 1. snapshots are pruned by size and age ----------------------------------------------------


def make_files(folder: Path, spec: list[tuple[str, int, float]]) -> None:
    for name, size, age in spec:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff" * size)
        os.utime(path, (T0 - age, T0 - age))


# (name, bytes, age in seconds): two cameras, oldest first across both.
FILES = [
    ("a/1.jpg", 1000, 9 * DAY),
    ("b/2.jpg", 1000, 6 * DAY),
    ("a/3.jpg", 1000, 3 * DAY),
    ("b/4.jpg", 1000, 2 * DAY),
    ("a/5.jpg", 1000, 60.0),
    ("a/notes.txt", 5000, 30 * DAY),
]


@pytest.mark.parametrize(
    ("max_bytes", "max_age", "advance", "kept"),
    [
        (10_000, 7 * DAY, 0.0, ["a/3.jpg", "a/5.jpg", "b/2.jpg", "b/4.jpg"]),  # age only
        (2_500, 7 * DAY, 0.0, ["a/5.jpg", "b/4.jpg"]),  # size: oldest first, across cameras
        (10_000, 0.0, 0.0, ["a/1.jpg", "a/3.jpg", "a/5.jpg", "b/2.jpg", "b/4.jpg"]),  # 0: no age limit
        (10_000, 7 * DAY, 5 * DAY, ["a/5.jpg", "b/4.jpg"]),  # time passes, no writes: idle tick prunes
        (0, 7 * DAY, 0.0, []),
    ],
)
def test_snapshot_retention_by_size_and_age(
    tmp_path: Path, max_bytes: int, max_age: float, advance: float, kept: list[str]
) -> None:
    folder = tmp_path / "snapshots"
    make_files(folder, FILES)
    clock = Clock()
    action = SnapshotAction(folder, crop=False, quality=80, max_bytes=max_bytes, max_age=max_age, clock=clock)
    action.tick()  # the dispatcher ticks at start and when idle
    clock.now += advance
    action.tick()
    left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.jpg"))
    assert left == kept
    assert (folder / "a" / "notes.txt").exists()  # only snapshots are managed
    assert action.files_removed == 5 - len(kept)


def test_snapshot_writes_stay_under_the_bound_without_rescanning(tmp_path: Path) -> None:
    folder = tmp_path / "snapshots"
    make_files(folder, FILES[:3])
    clock = Clock()
    action = SnapshotAction(folder, crop=False, quality=95, max_bytes=40_000, max_age=7 * DAY, clock=clock)
    with running([action]) as dispatcher:
        for i in range(30):
            clock.now += 1.0
            dispatcher.submit(EventEnvelope(payload(i), noise(i)))
        drained(dispatcher, 30)
    on_disk = list(folder.rglob("*.jpg"))
    assert sum(p.stat().st_size for p in on_disk) == action.retention.total_bytes <= 40_000
    assert folder / "cam" / f"{payload(29)['ts'].replace(':', '')}_r_{payload(29)['id'][:8]}.jpg" in on_disk
    assert not list(folder.rglob("*.part")) and not (folder / "a" / "1.jpg").exists()
    assert action.retention.scans == 1  # one scan at start, then the running total
    assert dispatcher.figures().files_removed == action.files_removed == 3 + 30 - len(on_disk) > 3


def test_retention_rescans_every_n_writes_and_notices_outside_changes(tmp_path: Path) -> None:
    make_files(tmp_path, FILES[:4])
    clock = Clock()
    retention = FolderRetention(
        tmp_path, max_bytes=10_000, max_age=30 * DAY, clock=clock, rescan_writes=3, rescan_seconds=3600
    )
    retention.prune()
    assert (retention.scans, retention.total_bytes, retention.count) == (1, 4000, 4)
    (tmp_path / "a" / "1.jpg").unlink()  # removed by a person
    make_files(tmp_path, [("c/leftover.jpg.part", 100, 0.0)])  # left by a crash mid-write
    for i in range(2):
        make_files(tmp_path, [(f"c/{i}.jpg", 500, 0.0)])
        retention.added(tmp_path / "c" / f"{i}.jpg", 500)
    assert (retention.scans, retention.total_bytes) == (1, 5000)  # the running total, stale by 1000
    make_files(tmp_path, [("c/2.jpg", 500, 0.0)])
    retention.added(tmp_path / "c" / "2.jpg", 500)  # the third write: rescan
    assert (retention.scans, retention.total_bytes, retention.count) == (2, 4500, 6)
    assert not (tmp_path / "c" / "leftover.jpg.part").exists()
    clock.now += 3600  # or after rescan_seconds
    retention.prune()
    assert retention.scans == 3


# -- 2. write failures are counted, logged once per streak, and recover ---------------------------


def test_snapshot_folder_that_is_a_file_is_counted_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "snapshots"
    blocker.write_text("a file where the snapshot folder should be")
    log = EventLogAction(tmp_path / "events.jsonl")
    with (
        caplog.at_level(logging.ERROR, logger="edge.actions"),
        running([SnapshotAction(blocker, crop=False, quality=80), log]) as dispatcher,
    ):
        for i in range(3):
            dispatcher.submit(EventEnvelope(payload(i), noise(i)))
            dispatcher.submit(EventEnvelope(payload(i, "end")))  # no image: neither fails nor recovers
        drained(dispatcher, 6)
    assert dict(dispatcher.figures().failures) == {"snapshot": 3, "event_log": 0}
    logged = failure_logs(caplog, "snapshot")
    assert len(logged) == 1 and str(blocker / "cam") in logged[0].getMessage()
    assert logged[0].exc_info is None  # one line: the path and the reason, no traceback
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == 6


def test_snapshots_on_a_full_disk_are_counted_and_recover(
    tmpfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmpfs / "snapshots"
    (folder / "cam").mkdir(parents=True)
    action = SnapshotAction(folder, crop=False, quality=95, max_bytes=10 * 1024**2, max_age=7 * DAY)
    with caplog.at_level(logging.WARNING, logger="edge.actions"), running([action]) as dispatcher:
        filler = fill(tmpfs)
        for i in range(4):
            dispatcher.submit(EventEnvelope(payload(i), noise(i, 96)))
        drained(dispatcher, 4)
        assert dict(dispatcher.figures().failures) == {"snapshot": 4}
        assert list(folder.rglob("*")) == [folder / "cam"]  # no torn JPEG, no leftover part file
        logged = failure_logs(caplog, "snapshot")
        assert len(logged) == 1 and "No space left on device" in logged[0].getMessage()
        filler.unlink()  # space returns
        dispatcher.submit(EventEnvelope(payload(9), noise(9, 96)))
        drained(dispatcher, 5)
    assert [p.suffix for p in (folder / "cam").iterdir()] == [".jpg"]
    assert dict(dispatcher.figures().failures) == {"snapshot": 4}
    assert any("action snapshot works again after 4 failure(s)" in r.getMessage() for r in caplog.records)


def test_event_log_on_a_full_disk_is_counted_keeps_whole_lines_and_recovers(
    tmpfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmpfs / "events.jsonl"
    action = EventLogAction(path, max_bytes=1024**2, keep=1)
    with caplog.at_level(logging.WARNING, logger="edge.actions"), running([action]) as dispatcher:
        dispatcher.submit(EventEnvelope(payload(0, "end")))
        drained(dispatcher, 1)
        filler = fill(tmpfs)  # the log's last page still has room for some lines, then a torn write
        for i in range(1, 101):
            dispatcher.submit(EventEnvelope(payload(i, "end")))
        drained(dispatcher, 101)
        failed = dict(dispatcher.figures().failures)["event_log"]
        assert failed > 0
        ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]  # every line whole
        assert ids == [payload(i)["id"] for i in range(101 - failed)]
        logged = failure_logs(caplog, "event_log")
        assert len(logged) == 1 and str(path) in logged[0].getMessage()
        assert "No space left on device" in logged[0].getMessage()
        filler.unlink()
        for i in range(101, 104):
            dispatcher.submit(EventEnvelope(payload(i, "end")))
        drained(dispatcher, 104)
    ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
    assert ids[-3:] == [payload(i)["id"] for i in range(101, 104)]
    assert dict(dispatcher.figures().failures)["event_log"] == failed
    assert any(
        f"action event_log works again after {failed} failure(s)" in r.getMessage() for r in caplog.records
    )


def test_event_log_reopens_when_its_folder_comes_back(tmp_path: Path) -> None:
    state = tmp_path / "state"
    action = EventLogAction(state / "events.jsonl")
    with running([action]) as dispatcher:
        dispatcher.submit(EventEnvelope(payload(0, "end")))
        drained(dispatcher, 1)
        action.close()  # as if the card were remounted: the open file is gone
        (state / "events.jsonl").unlink()
        state.rmdir()
        state.write_text("")  # the folder is a file for a while
        dispatcher.submit(EventEnvelope(payload(1, "end")))
        drained(dispatcher, 2)
        state.unlink()
        dispatcher.submit(EventEnvelope(payload(2, "end")))
        drained(dispatcher, 3)
    assert dict(dispatcher.figures().failures) == {"event_log": 1}
    assert [json.loads(x)["id"] for x in (state / "events.jsonl").read_text().splitlines()] == [
        payload(2)["id"]
    ]


# -- 3. a full queue drops and counts -----------------------------------------------------------


class BlockingAction:
    """Holds the dispatcher in ``handle`` until released."""

    name = "blocking"
    files_removed = 0

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.seen: list[str] = []

    def handle(self, env: EventEnvelope) -> bool:
        self.entered.set()
        assert self.release.wait(30)
        self.seen.append(env.payload["id"])
        return True

    def tick(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_full_queue_drops_counts_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    action = BlockingAction()
    with (
        caplog.at_level(logging.WARNING, logger="edge.actions"),
        running([action], maxsize=2, submit_timeout=0.01) as dispatcher,
    ):
        assert dispatcher.submit(EventEnvelope(payload(0)))
        assert action.entered.wait(30)  # the dispatcher holds event 0; the queue is empty
        assert dispatcher.submit(EventEnvelope(payload(1))) and dispatcher.submit(EventEnvelope(payload(2)))
        results = [dispatcher.submit(EventEnvelope(payload(i))) for i in range(3, 8)]
        figures = dispatcher.figures()
        assert results == [False] * 5
        assert (figures.queue_depth, figures.dropped, figures.handled) == (2, 5, 0)
        action.release.set()
        drained(dispatcher, 3)
        assert dispatcher.submit(EventEnvelope(payload(8)))
        drained(dispatcher, 4)
    assert action.seen == [payload(i)["id"] for i in (0, 1, 2, 8)]
    assert dispatcher.dropped == dispatcher.figures().dropped == 5
    messages = [r.getMessage() for r in caplog.records]
    assert sum("action queue full" in m for m in messages) == 1
    assert sum("room again; 5 event(s) dropped" in m for m in messages) == 1


class StateAction(BlockingAction):
    """A blocking action that also keeps rule states, as the MQTT action does."""

    name = "mqtt"

    def __init__(self) -> None:
        super().__init__()
        self.states: list[tuple[str, str, str, int]] = []

    def status(self, status: RuleStatus) -> None:
        self.states.append((status.camera, status.rule, status.state, status.count))


def rule_status(camera: str, rule: str, state: str, count: int) -> RuleStatus:
    return RuleStatus(camera, rule, "presence", state, count, 1.7e9, None, True, True)  # type: ignore[arg-type]


def test_rule_states_are_never_lost_when_the_queue_is_full() -> None:
    """A full queue drops events (counted) but never a rule's state: the latest state of each
    (camera, rule) reaches the actions, after the events queued before it."""
    action = StateAction()
    with running([action], maxsize=2, submit_timeout=0.01) as dispatcher:
        assert dispatcher.submit(EventEnvelope(payload(0)))
        assert action.entered.wait(30)
        assert dispatcher.submit(EventEnvelope(payload(1))) and dispatcher.submit(EventEnvelope(payload(2)))
        for n in range(5):  # the queue is full: these coalesce, the last of each pair wins
            dispatcher.submit_status(rule_status("cam", "door", "on", n))
        dispatcher.submit_status(rule_status("cam", "gate", "off", 0))
        assert not dispatcher.submit(EventEnvelope(payload(3)))
        action.release.set()
        wait_until(lambda: len(action.states) == 2, 30, "the states handed on")
        dispatcher.submit_status(rule_status("cam", "door", "off", 0))  # an idle queue: at once
        wait_until(lambda: len(action.states) == 3, 30, "the next state")
    assert action.seen == [payload(i)["id"] for i in (0, 1, 2)]
    assert action.states == [("cam", "door", "on", 4), ("cam", "gate", "off", 0), ("cam", "door", "off", 0)]
    assert dispatcher.figures().dropped == 1  # the event, not the states


@pytest.mark.parametrize(
    ("actions", "action", "wanted"),
    [
        (None, "mqtt", True),
        (frozenset({"command"}), "mqtt", False),
        (frozenset({"command"}), "command", True),
        (frozenset({"mqtt", "event_log"}), "snapshot", False),
        (frozenset({"command"}), "preview", True),  # a rule cannot name the preview: it always sees
    ],
)
def test_a_rule_chooses_its_actions(actions: frozenset[str] | None, action: str, wanted: bool) -> None:
    assert EventEnvelope(payload(0), actions=actions).wants(action) is wanted


# -- 4. the dispatcher thread never dies ----------------------------------------------------------


class Recorder:
    name = "recorder"
    files_removed = 0

    def __init__(self) -> None:
        self.seen: list[str] = []

    def handle(self, env: EventEnvelope) -> bool:
        self.seen.append(env.payload["id"])
        return True

    def tick(self) -> None:
        pass

    def close(self) -> None:
        pass


class Faulty:
    """Raises where told: in handle, tick or close."""

    name = "faulty"
    files_removed = 0

    def __init__(self, where: str) -> None:
        self.where = where

    def _maybe(self, where: str) -> None:
        if self.where == where:
            raise RuntimeError(f"{where} broke")

    def handle(self, env: EventEnvelope) -> bool:
        self._maybe("handle")
        return True

    def tick(self) -> None:
        self._maybe("tick")

    def close(self) -> None:
        self._maybe("close")


@pytest.mark.parametrize(
    ("fault", "failures"),
    [
        ("handle", {"faulty": 4, "recorder": 0}),
        ("tick", {"faulty": 1, "recorder": 0}),  # at start only: never idle long enough for more
        ("close", {"faulty": 1, "recorder": 0}),  # on reload
        ("envelope", {"faulty": 0, "recorder": 0, "dispatcher": 1}),  # the loop itself
        (None, {"faulty": 0, "recorder": 0}),
    ],
)
def test_the_dispatcher_survives_errors_and_counts_them(
    fault: str | None, failures: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    faulty, recorder = Faulty(fault or ""), Recorder()
    with caplog.at_level(logging.ERROR, logger="edge.actions"), running([faulty, recorder]) as dispatcher:
        if fault == "envelope":
            dispatcher.submit(EventEnvelope(None))  # type: ignore[arg-type]  # a broken envelope
        for i in range(3):
            dispatcher.submit(EventEnvelope(payload(i)))
        if fault == "close":
            dispatcher.replace_actions([recorder])
        dispatcher.submit(EventEnvelope(payload(3)))
        wait_until(lambda: len(recorder.seen) == 4, 30, "4 events recorded")
        assert dispatcher.is_alive()
    assert recorder.seen == [payload(i)["id"] for i in range(4)]
    assert dict(dispatcher.figures().failures) == failures
    broken = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(broken) == (0 if fault is None else 1)  # once per streak, with the traceback
    assert all(r.exc_info is not None for r in broken)
