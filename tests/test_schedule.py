"""Schedule windows: day filters, overnight windows, 24:00, time zones, DST, 'local', describe()."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timezone
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edge.config.schema import ScheduleConfig
from edge.rules.schedule import Schedule, Window

# The week of Monday 2026-06-01 (summer time in Berlin and New York).
MON, TUE, WED, THU, FRI, SAT, SUN = range(1, 8)  # June 2026 day numbers
BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"


def sched(*windows: tuple[list[str] | None, str, str], tz: str = "UTC") -> Schedule:
    """Build through the config schema with the YAML keys, as a config file would."""
    raw: list[dict[str, Any]] = []
    for days, start, end in windows:
        w: dict[str, Any] = {"from": start, "to": end}
        if days is not None:
            w["days"] = days
        raw.append(w)
    return Schedule.from_config(ScheduleConfig.model_validate({"timezone": tz, "windows": raw}))


def at(day: int, hh: int, mm: int, ss: float = 0.0, tz: str = "UTC", month: int = 6) -> float:
    """UNIX time of a local wall-clock time in 2026 (fold=0 for a repeated time)."""
    sec = int(ss)
    micro = round((ss - sec) * 1e6)
    return datetime(2026, month, day, hh, mm, sec, micro, tzinfo=ZoneInfo(tz)).timestamp()


def utc(month: int, day: int, hh: int, mm: int, ss: int = 0) -> float:
    return datetime(2026, month, day, hh, mm, ss, tzinfo=timezone.utc).timestamp()


WEEKDAYS_9_17 = (["mon", "tue", "wed", "thu", "fri"], "09:00", "17:00")
MON_NIGHT = (["mon"], "22:00", "06:00")
SUN_NIGHT = (["sun"], "22:00", "06:00")

ACTIVE_CASES = [
    # daytime window, start inclusive, end exclusive
    ("day-inside", [WEEKDAYS_9_17], at(TUE, 12, 0), True),
    ("day-before", [WEEKDAYS_9_17], at(TUE, 8, 59, 59.999), False),
    ("day-start-inclusive", [WEEKDAYS_9_17], at(TUE, 9, 0), True),
    ("day-last-second", [WEEKDAYS_9_17], at(TUE, 16, 59, 59.999), True),
    ("day-end-exclusive", [WEEKDAYS_9_17], at(TUE, 17, 0), False),
    ("day-evening", [WEEKDAYS_9_17], at(TUE, 23, 0), False),
    # days filter
    ("days-saturday-off", [WEEKDAYS_9_17], at(SAT, 12, 0), False),
    ("days-sunday-off", [WEEKDAYS_9_17], at(SUN, 12, 0), False),
    ("days-default-every-day", [(None, "09:00", "17:00")], at(SUN, 12, 0), True),
    # overnight window belongs to the day it starts on
    ("night-start-day-evening", [MON_NIGHT], at(MON, 22, 0), True),
    ("night-before-midnight", [MON_NIGHT], at(MON, 23, 59, 59), True),
    ("night-midnight", [MON_NIGHT], at(TUE, 0, 0), True),
    ("night-next-morning", [MON_NIGHT], at(TUE, 5, 59, 59), True),
    ("night-ends-exclusive", [MON_NIGHT], at(TUE, 6, 0), False),
    ("night-start-day-morning", [MON_NIGHT], at(MON, 3, 0), False),
    ("night-next-evening", [MON_NIGHT], at(TUE, 22, 30), False),
    ("night-before-start", [MON_NIGHT], at(MON, 21, 59, 59), False),
    # Sunday night wraps to Monday morning (the next week)
    ("sun-night-evening", [SUN_NIGHT], at(SUN, 23, 0), True),
    ("sun-night-monday-morning", [SUN_NIGHT], at(8, 5, 0), True),
    ("sun-night-monday-6", [SUN_NIGHT], at(8, 6, 0), False),
    ("sun-night-monday-before-week", [SUN_NIGHT], at(MON, 2, 0), True),  # from Sunday 31 May
    ("sun-night-sunday-morning", [SUN_NIGHT], at(SUN, 2, 0), False),
    # a day not in `days`, covered in the morning by the previous day's overnight window
    ("sat-not-in-days-covered", [(["fri"], "20:00", "04:00")], at(SAT, 3, 0), True),
    ("sat-not-in-days-evening", [(["fri"], "20:00", "04:00")], at(SAT, 21, 0), False),
    # 24:00 as the end
    ("2400-last-second", [(["mon"], "18:00", "24:00")], at(MON, 23, 59, 59.999), True),
    ("2400-midnight-off", [(["mon"], "18:00", "24:00")], at(TUE, 0, 0), False),
    ("whole-day-0000-2400", [(["wed"], "00:00", "24:00")], at(WED, 0, 0), True),
    ("whole-day-0000-2400-next", [(["wed"], "00:00", "24:00")], at(THU, 0, 0), False),
    # start == end: 24 hours from start
    ("equal-from-start", [(["mon"], "08:00", "08:00")], at(MON, 8, 0), True),
    ("equal-next-morning", [(["mon"], "08:00", "08:00")], at(TUE, 7, 59, 59), True),
    ("equal-ends", [(["mon"], "08:00", "08:00")], at(TUE, 8, 0), False),
    ("equal-before", [(["mon"], "08:00", "08:00")], at(MON, 7, 59), False),
    # several windows
    ("multi-first", [WEEKDAYS_9_17, (["sat"], "22:00", "06:00")], at(FRI, 10, 0), True),
    ("multi-second", [WEEKDAYS_9_17, (["sat"], "22:00", "06:00")], at(SUN, 1, 0), True),
    ("multi-neither", [WEEKDAYS_9_17, (["sat"], "22:00", "06:00")], at(SAT, 12, 0), False),
    ("multi-adjacent", [(["mon"], "08:00", "12:00"), (["mon"], "12:00", "14:00")], at(MON, 12, 0), True),
    ("multi-overlap", [(["mon"], "08:00", "13:00"), (["mon"], "12:00", "14:00")], at(MON, 13, 30), True),
]


@pytest.mark.parametrize(
    ("windows", "t", "expected"), [c[1:] for c in ACTIVE_CASES], ids=[c[0] for c in ACTIVE_CASES]
)
def test_active_utc(windows: list[tuple[list[str] | None, str, str]], t: float, expected: bool) -> None:
    assert sched(*windows).active(t) is expected


ZONE_CASES = [
    # the same instant, 2026-06-02 07:30 UTC = 09:30 Berlin (CEST) = 03:30 New York (EDT)
    ("utc-0730", "UTC", utc(6, 2, 7, 30), False),
    ("berlin-0930", BERLIN, utc(6, 2, 7, 30), True),
    ("new-york-0330", NEW_YORK, utc(6, 2, 7, 30), False),
    # 2026-06-02 13:30 UTC = 15:30 Berlin = 09:30 New York
    ("utc-1330", "UTC", utc(6, 2, 13, 30), True),
    ("berlin-1530", BERLIN, utc(6, 2, 13, 30), True),
    ("new-york-0930", NEW_YORK, utc(6, 2, 13, 30), True),
    # 2026-06-02 15:30 UTC = 17:30 Berlin = 11:30 New York
    ("berlin-1730", BERLIN, utc(6, 2, 15, 30), False),
    ("new-york-1130", NEW_YORK, utc(6, 2, 15, 30), True),
    # the weekday is the zone's: Saturday 2026-06-06 02:00 UTC is still Friday 22:00 in New York
    ("new-york-friday-night", NEW_YORK, utc(6, 6, 2, 0), False),
    ("utc-saturday-night", "UTC", utc(6, 6, 2, 0), False),
    # Friday 2026-06-05 20:30 UTC = 16:30 New York Friday (in), 22:30 Berlin (out)
    ("new-york-friday-1630", NEW_YORK, utc(6, 5, 20, 30), True),
    ("berlin-friday-2230", BERLIN, utc(6, 5, 20, 30), False),
]


@pytest.mark.parametrize(("tz", "t", "expected"), [c[1:] for c in ZONE_CASES], ids=[c[0] for c in ZONE_CASES])
def test_active_time_zones(tz: str, t: float, expected: bool) -> None:
    assert sched(WEEKDAYS_9_17, tz=tz).active(t) is expected


# Europe/Berlin 2026: spring forward Sun 03-29 01:00 UTC (02:00 CET -> 03:00 CEST),
# fall back Sun 10-25 01:00 UTC (03:00 CEST -> 02:00 CET). Both are Sundays.
GAP = (["sun"], "02:15", "02:45")
INTO_GAP = (["sun"], "01:30", "02:30")
REPEATED = (["sun"], "02:00", "03:00")
DST_CASES = [
    # spring forward: 02:15-02:45 never occurs that night
    ("gap-window-before", GAP, utc(3, 29, 0, 59, 59), False),  # 01:59:59 CET
    ("gap-window-at-jump", GAP, utc(3, 29, 1, 0), False),  # 03:00 CEST
    ("gap-window-after", GAP, utc(3, 29, 1, 20), False),  # 03:20 CEST
    ("gap-window-week-after", GAP, utc(4, 5, 0, 30), True),  # 02:30 CEST a week later
    # spring forward: 01:30-02:30 ends at the jump to 03:00 (01:00 UTC)
    ("into-gap-start", INTO_GAP, utc(3, 29, 0, 30), True),  # 01:30 CET
    ("into-gap-last-second", INTO_GAP, utc(3, 29, 0, 59, 59), True),  # 01:59:59 CET
    ("into-gap-ends-at-jump", INTO_GAP, utc(3, 29, 1, 0), False),  # 03:00 CEST
    ("into-gap-before", INTO_GAP, utc(3, 29, 0, 29, 59), False),  # 01:29:59 CET
    # fall back: 02:00-03:00 is active in both passes of the repeated hour
    ("repeat-before", REPEATED, utc(10, 24, 23, 59, 59), False),  # 01:59:59 CEST
    ("repeat-first-pass-start", REPEATED, utc(10, 25, 0, 0), True),  # 02:00 CEST
    ("repeat-first-pass-end", REPEATED, utc(10, 25, 0, 59, 59), True),  # 02:59:59 CEST
    ("repeat-second-pass-start", REPEATED, utc(10, 25, 1, 0), True),  # 02:00 CET
    ("repeat-second-pass-end", REPEATED, utc(10, 25, 1, 59, 59), True),  # 02:59:59 CET
    ("repeat-after", REPEATED, utc(10, 25, 2, 0), False),  # 03:00 CET
]


@pytest.mark.parametrize(
    ("window", "t", "expected"), [c[1:] for c in DST_CASES], ids=[c[0] for c in DST_CASES]
)
def test_active_dst_berlin(window: tuple[list[str], str, str], t: float, expected: bool) -> None:
    assert sched(window, tz=BERLIN).active(t) is expected


@pytest.fixture
def restore_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Change TZ for the test; the C library's zone is reset once monkeypatch has restored TZ."""
    yield monkeypatch
    monkeypatch.undo()
    time.tzset()


LOCAL_CASES = [
    # 2026-06-02 07:30 UTC: 09:30 in Berlin, 03:30 in New York, 07:30 in UTC
    ("local-berlin", BERLIN, utc(6, 2, 7, 30), True),
    ("local-new-york", NEW_YORK, utc(6, 2, 7, 30), False),
    ("local-utc", "UTC", utc(6, 2, 7, 30), False),
    # the weekday is the local one: Saturday 02:00 UTC is Friday 22:00 in New York
    ("local-new-york-friday-night", NEW_YORK, utc(6, 6, 2, 0), False),
    ("local-tokyo-tuesday-morning", "Asia/Tokyo", utc(6, 2, 1, 0), True),
]


@pytest.mark.parametrize(
    ("tz", "t", "expected"), [c[1:] for c in LOCAL_CASES], ids=[c[0] for c in LOCAL_CASES]
)
def test_active_local(restore_tz: pytest.MonkeyPatch, tz: str, t: float, expected: bool) -> None:
    s = sched(WEEKDAYS_9_17, tz="local")
    restore_tz.setenv("TZ", tz)
    time.tzset()
    assert s.active(t) is expected


def test_local_follows_tz_change(restore_tz: pytest.MonkeyPatch) -> None:
    """The same Schedule object follows the host's zone at each call."""
    s = sched(WEEKDAYS_9_17, tz="local")
    t = utc(6, 2, 7, 30)
    for tz, expected in [(BERLIN, True), ("UTC", False), ("Asia/Tokyo", True), (NEW_YORK, False)]:
        restore_tz.setenv("TZ", tz)
        time.tzset()
        assert s.active(t) is expected, tz


def test_local_dst_repeat(restore_tz: pytest.MonkeyPatch) -> None:
    restore_tz.setenv("TZ", BERLIN)
    time.tzset()
    s = sched(REPEATED, tz="local")
    assert [s.active(utc(10, 25, h, m)) for h, m in [(0, 0), (0, 59), (1, 0), (1, 59), (2, 0)]] == [
        True,
        True,
        True,
        True,
        False,
    ]
    assert s.next_change(utc(10, 25, 0, 30)) == utc(10, 25, 2, 0)


DESCRIBE_CASES = [
    (
        "weekdays-and-saturday-night",
        [(["mon", "tue", "wed", "thu", "fri"], "08:00", "18:00"), (["sat"], "22:00", "06:00")],
        BERLIN,
        "mon-fri 08:00-18:00, sat 22:00-06:00 (Europe/Berlin)",
    ),
    ("every-day", [(None, "00:00", "24:00")], "UTC", "daily 00:00-24:00 (UTC)"),
    ("single-days", [(["mon", "wed", "fri"], "07:00", "07:30")], "local", "mon,wed,fri 07:00-07:30 (local)"),
    (
        "mixed-runs",
        [(["mon", "tue", "thu", "fri", "sat"], "10:00", "11:00")],
        "UTC",
        "mon-tue,thu-sat 10:00-11:00 (UTC)",
    ),
    ("wraps-sunday", [(["sat", "sun", "mon"], "10:00", "11:00")], "UTC", "sat-mon 10:00-11:00 (UTC)"),
    ("unordered-duplicates", [(["fri", "mon", "fri"], "10:00", "11:00")], "UTC", "mon,fri 10:00-11:00 (UTC)"),
    ("equal-24h", [(["sun"], "08:00", "08:00")], NEW_YORK, "sun 08:00-08:00 (24h) (America/New_York)"),
]


@pytest.mark.parametrize(
    ("windows", "tz", "text"), [c[1:] for c in DESCRIBE_CASES], ids=[c[0] for c in DESCRIBE_CASES]
)
def test_describe(windows: list[tuple[list[str] | None, str, str]], tz: str, text: str) -> None:
    assert sched(*windows, tz=tz).describe() == text


NEXT_CASES = [
    # (windows, tz, t, expected next flip or None)
    ("day-inside-to-end", [WEEKDAYS_9_17], "UTC", at(TUE, 12, 0), at(TUE, 17, 0)),
    ("day-outside-to-start", [WEEKDAYS_9_17], "UTC", at(TUE, 18, 0), at(WED, 9, 0)),
    ("friday-evening-to-monday", [WEEKDAYS_9_17], "UTC", at(FRI, 17, 0), at(8, 9, 0)),
    ("at-start-to-end", [WEEKDAYS_9_17], "UTC", at(TUE, 9, 0), at(TUE, 17, 0)),
    ("sunday-night-wrap", [SUN_NIGHT], "UTC", at(SUN, 23, 0), at(8, 6, 0)),
    (
        "adjacent-merged",
        [(["mon"], "08:00", "12:00"), (["mon"], "12:00", "14:00")],
        "UTC",
        at(MON, 9, 0),
        at(MON, 14, 0),
    ),
    ("berlin-zone", [WEEKDAYS_9_17], BERLIN, utc(6, 2, 12, 0), utc(6, 2, 15, 0)),
    ("new-york-zone", [WEEKDAYS_9_17], NEW_YORK, utc(6, 2, 14, 0), utc(6, 2, 21, 0)),
    ("always-on", [(None, "00:00", "24:00")], BERLIN, utc(6, 2, 12, 0), None),
    ("always-on-24h-windows", [(None, "06:00", "06:00")], "UTC", utc(6, 2, 12, 0), None),
    # DST, Europe/Berlin
    ("spring-into-gap-ends-at-jump", [INTO_GAP], BERLIN, utc(3, 29, 0, 40), utc(3, 29, 1, 0)),
    ("spring-gap-window-skipped", [GAP], BERLIN, utc(3, 29, 0, 0), utc(4, 5, 0, 15)),
    ("spring-into-gap-start", [INTO_GAP], BERLIN, utc(3, 28, 12, 0), utc(3, 29, 0, 30)),
    ("fall-repeat-start", [REPEATED], BERLIN, utc(10, 24, 12, 0), utc(10, 25, 0, 0)),
    ("fall-repeat-both-passes", [REPEATED], BERLIN, utc(10, 25, 0, 30), utc(10, 25, 2, 0)),
    ("fall-daytime-after-change", [WEEKDAYS_9_17], BERLIN, utc(10, 24, 12, 0), utc(10, 26, 8, 0)),
]


@pytest.mark.parametrize(
    ("windows", "tz", "t", "expected"), [c[1:] for c in NEXT_CASES], ids=[c[0] for c in NEXT_CASES]
)
def test_next_change(
    windows: list[tuple[list[str] | None, str, str]], tz: str, t: float, expected: float | None
) -> None:
    s = sched(*windows, tz=tz)
    got = s.next_change(t)
    assert got == expected
    if got is not None:  # it is a flip: the state holds until just before it and changes at it
        assert s.active(got) is not s.active(t)
        assert s.active(got - 0.5) is s.active(t)


@pytest.mark.parametrize("tz", ["UTC", BERLIN, NEW_YORK, "Australia/Lord_Howe"])
def test_next_change_agrees_with_scan(tz: str) -> None:
    """Flips found by next_change, chained over 3 weeks around both changes of 2026, equal a
    minute-by-minute scan of active() (every window edge here is on a whole minute)."""
    s = sched(WEEKDAYS_9_17, SUN_NIGHT, REPEATED, INTO_GAP, (["wed"], "01:45", "02:15"), tz=tz)
    for start in (utc(3, 20, 0, 0), utc(10, 20, 0, 0), utc(4, 1, 0, 0)):
        end = start + 21 * 86400
        states = [(float(t), s.active(t)) for t in range(int(start), int(end), 60)]
        scanned = [t for (_, was), (t, now) in pairwise(states) if now is not was]
        chained: list[float] = []
        t = start
        while (nxt := s.next_change(t)) is not None and nxt < end:
            chained.append(nxt)
            t = nxt
        assert chained == scanned


WINDOW_ERRORS = [
    ("no-days", ((), 0, 60), "weekday numbers"),
    ("bad-day", ((7,), 0, 60), "weekday numbers"),
    ("start-1440", ((0,), 1440, 60), "start must be"),
    ("end-over", ((0,), 0, 1441), "start must be"),
]


@pytest.mark.parametrize(("args", "match"), [c[1:] for c in WINDOW_ERRORS], ids=[c[0] for c in WINDOW_ERRORS])
def test_window_errors(args: tuple[tuple[int, ...], int, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Window(*args)


CONFIG_ERRORS = [
    (
        "bad-zone",
        {"timezone": "Mars/Olympus", "windows": [{"from": "08:00", "to": "09:00"}]},
        "unknown time zone",
    ),
    ("bad-clock", {"timezone": "UTC", "windows": [{"from": "24:30", "to": "09:00"}]}, "HH:MM"),
    ("no-windows", {"timezone": "UTC", "windows": []}, "at least 1"),
]


@pytest.mark.parametrize(("raw", "match"), [c[1:] for c in CONFIG_ERRORS], ids=[c[0] for c in CONFIG_ERRORS])
def test_config_errors(raw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ScheduleConfig.model_validate(raw)


def test_frozen_and_shareable() -> None:
    s = sched(WEEKDAYS_9_17, tz=BERLIN)
    with pytest.raises(AttributeError):
        s.timezone = "UTC"  # type: ignore[misc]
    assert s == sched(WEEKDAYS_9_17, tz=BERLIN)
    assert hash(s) == hash(sched(WEEKDAYS_9_17, tz=BERLIN))
