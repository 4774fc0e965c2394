"""When a rule is active: weekly time windows on the wall clock of a time zone.

A window is active on each of its days from ``start`` (inclusive) to ``end`` (exclusive). A
window whose end is not after its start runs past midnight and belongs to the day it starts on
(``mon 22:00-06:00`` is Monday 22:00 to Tuesday 06:00; on Sunday it ends Monday 06:00);
``start == end`` is 24 hours from ``start``; ``24:00`` as the end is the end of the day.

Everything is judged on local wall-clock time, so daylight saving time needs no special case:

- Spring forward (Europe/Berlin 2026-03-29, 02:00 -> 03:00): the skipped wall times never
  occur. A window 02:15-02:45 does not fire that night; a window 01:30-02:30 ends when the
  clock jumps to 03:00 (01:00 UTC).
- Fall back (Europe/Berlin 2026-10-25, 03:00 -> 02:00): the repeated wall times occur twice,
  and a window covering 02:00-03:00 is active during both passes of that hour.

The windows are expanded once into merged half-open intervals of "seconds since Monday 00:00"
(a week of wall-clock time); ``active`` converts a UNIX time to that position and bisects.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

from edge.config.schema import WEEKDAYS, ScheduleConfig

DAY_S = 86400
WEEK_S = 7 * DAY_S
_MONDAY_EPOCH_S = 4 * DAY_S  # 1970-01-05, the first Monday: wall seconds -> seconds into the week
SEARCH_S = 8 * DAY_S
"""How far ahead ``next_change`` looks."""
_OFFSET_PROBE_S = 3600  # UTC-offset changes are looked for hour by hour (no zone has two within an hour)


def _minutes(clock: str) -> int:
    """'HH:MM' (00:00 to 24:00, validated by the schema) -> minutes after midnight."""
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class Window:
    """On each of ``days`` (0 = Monday .. 6 = Sunday) from ``start`` to ``end`` minutes after
    midnight; ``end <= start`` runs into the next day (``start == end``: 24 hours)."""

    days: tuple[int, ...]
    start: int
    end: int

    def __post_init__(self) -> None:
        if not self.days or any(not 0 <= d <= 6 for d in self.days):
            raise ValueError(f"days must be weekday numbers 0 (Monday) to 6 (Sunday), got {self.days}")
        if not 0 <= self.start < 1440 or not 0 <= self.end <= 1440:
            raise ValueError(
                f"start must be in [0, 1440) and end in [0, 1440] minutes, got {self.start}, {self.end}"
            )
        object.__setattr__(self, "days", tuple(sorted(set(self.days))))

    @property
    def length_s(self) -> int:
        """The window's duration in wall-clock seconds (at most 24 hours)."""
        minutes = self.end - self.start if self.end > self.start else self.end + 1440 - self.start
        return minutes * 60

    def describe(self) -> str:
        times = f"{_clock(self.start)}-{_clock(self.end)}"
        return f"{_describe_days(self.days)} {times}" + (" (24h)" if self.start == self.end else "")


def _describe_days(days: tuple[int, ...]) -> str:
    """Sorted weekday numbers -> 'mon-fri', 'mon,wed', 'sat-mon' (runs across Sunday wrap), 'daily'."""
    if len(days) == 7:
        return "daily"
    present = set(days)
    first_gap = next(d for d in range(7) if d not in present)
    runs: list[tuple[int, int]] = []
    for step in range(1, 8):  # walk the week once, starting just after a missing day
        d = (first_gap + step) % 7
        if d not in present:
            continue
        if runs and (runs[-1][1] + 1) % 7 == d:
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
    runs.sort()  # week order by first day; a run across Sunday starts late in the week
    return ",".join(WEEKDAYS[a] if a == b else f"{WEEKDAYS[a]}-{WEEKDAYS[b]}" for a, b in runs)


def _intervals(windows: tuple[Window, ...]) -> tuple[tuple[int, int], ...]:
    """Merged, sorted half-open intervals of seconds into the week (Monday 00:00 = 0)."""
    raw: list[tuple[int, int]] = []
    for w in windows:
        for d in w.days:
            a = d * DAY_S + w.start * 60
            b = a + w.length_s
            if b <= WEEK_S:
                raw.append((a, b))
            else:  # Sunday night into Monday morning
                raw.append((a, WEEK_S))
                raw.append((0, b - WEEK_S))
    raw.sort()
    merged: list[tuple[int, int]] = []
    for a, b in raw:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return tuple(merged)


@dataclass(frozen=True)
class Schedule:
    """Weekly windows in ``timezone`` (an IANA name, or "local": the process's local zone).

    Immutable; ``active`` and ``next_change`` are safe to call from any thread.

    "local" is resolved at each call through the C library's ``localtime``, so a change of the
    ``TZ`` environment variable followed by ``time.tzset()`` is followed. A changed
    ``/etc/localtime`` may not be re-read by a running process (glibc reads it once while ``TZ``
    is unset), so restart the daemon after ``timedatectl set-timezone``.
    """

    timezone: str
    windows: tuple[Window, ...]
    _zone: ZoneInfo | None = field(init=False, repr=False, compare=False)
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _ends: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.windows:
            raise ValueError("a schedule needs at least one window")
        zone = None if self.timezone == "local" else ZoneInfo(self.timezone)
        spans = _intervals(self.windows)
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_starts", tuple(a for a, _ in spans))
        object.__setattr__(self, "_ends", tuple(b for _, b in spans))

    @classmethod
    def from_config(cls, cfg: ScheduleConfig) -> Schedule:
        windows = tuple(
            Window(tuple(WEEKDAYS.index(d) for d in w.days), _minutes(w.start), _minutes(w.end))
            for w in cfg.windows
        )
        return cls(cfg.timezone, windows)

    @property
    def always_active(self) -> bool:
        return self._starts == (0,) and self._ends == (WEEK_S,)

    def active(self, t_wall: float) -> bool:
        """Is the UNIX time ``t_wall`` inside one of the windows (on the zone's wall clock)?

        Raises ``OverflowError``/``OSError``/``ValueError`` for times ``datetime`` cannot hold.
        """
        zone = self._zone
        dt = datetime.fromtimestamp(t_wall) if zone is None else datetime.fromtimestamp(t_wall, zone)
        s = dt.weekday() * DAY_S + dt.hour * 3600 + dt.minute * 60 + dt.second + dt.microsecond * 1e-6
        i = bisect_right(self._starts, s) - 1
        return i >= 0 and s < self._ends[i]

    def _offset(self, t: float) -> int:
        """Seconds the zone's wall clock is ahead of UTC at UNIX time ``t``."""
        if self._zone is None:
            return time.localtime(t).tm_gmtoff
        off = self._zone.utcoffset(datetime.fromtimestamp(t, self._zone))
        return int(off.total_seconds()) if off is not None else 0

    def _offset_changes(self, t0: float, t1: float) -> list[int]:
        """UNIX times (whole seconds) in (t0, t1] at which the UTC offset changes."""
        found: list[int] = []
        lo = int(t0)
        lo_off = self._offset(lo)
        while lo < t1:
            hi = min(lo + _OFFSET_PROBE_S, int(t1) + 1)
            hi_off = self._offset(hi)
            if hi_off != lo_off:
                a, b = lo, hi  # offset(a) == lo_off != offset(b): find the first second of the new offset
                while b - a > 1:
                    mid = (a + b) // 2
                    if self._offset(mid) == lo_off:
                        a = mid
                    else:
                        b = mid
                found.append(b)
            lo, lo_off = hi, hi_off
        return found

    def next_change(self, t_wall: float) -> float | None:
        """The first UNIX time after ``t_wall`` (within 8 days) at which ``active`` flips, or None.

        Between UTC-offset changes the wall clock is UNIX time plus a constant, so ``active``
        can only flip where that line crosses a window edge, or where the offset changes (the
        wall clock jumps). Those candidates are checked in order with ``active`` itself.
        """
        if self.always_active:
            return None
        edges = sorted({*self._starts, *self._ends})
        end = t_wall + SEARCH_S
        cuts = [t_wall, *(c for c in self._offset_changes(t_wall, end) if c > t_wall), end]
        candidates: set[float] = set(cuts[1:-1])
        for a, b in pairwise(cuts):
            off = self._offset(a)
            wall_a, wall_b = a + off, b + off
            week0 = (wall_a - _MONDAY_EPOCH_S) // WEEK_S * WEEK_S + _MONDAY_EPOCH_S
            while week0 <= wall_b:
                for e in edges:
                    wall = week0 + e
                    if wall_a < wall <= wall_b:
                        candidates.add(float(wall - off))
                week0 += WEEK_S
        state = self.active(t_wall)
        for c in sorted(candidates):
            if t_wall < c <= end and self.active(c) != state:
                return c
        return None

    def describe(self) -> str:
        """Short text, e.g. 'mon-fri 08:00-18:00, sat 22:00-06:00 (Europe/Berlin)'."""
        return ", ".join(w.describe() for w in self.windows) + f" ({self.timezone})"
