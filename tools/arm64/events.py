#!/usr/bin/env python3
"""tools/arm64_check.sh's run step: the arm64 `edge run` gave the events x86 gives.

    events.py X86_EVENTS.jsonl ARM64_EVENTS.jsonl MQTT_EVENTS.jsonl

The first two are the event logs (<state_dir>/events.jsonl) of tools/arm64/small.yaml on the same
clip; the third is what a subscriber to edge/arm64/events received (one JSON payload a line).
Checks: the clip's expected events are there (the person crosses the walkway line "in" and enters
the zone), arm64 and x86 agree on each event's type, rule, track, direction, reason and frame
time, the boxes agree within BOX_ATOL pixels, and MQTT carried exactly the logged events.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# Pixels. Each platform's OpenCV decodes the H.264 clip to BGR a little differently (measured: up
# to 2 grey levels in 75% of the values), which moves the boxes by up to 1.6 px measured; the
# golden step bounds the model's own x86/arm64 difference far tighter, on identical input.
BOX_ATOL = 4.0
EXPECTED = [("cross", "walkway", 1, "in"), ("new", "person_in_zone", 1, None)]


def _load(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SystemExit(f"{path}: cannot read the events ({exc.strerror})") from None
    events = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise SystemExit(f"{path}:{n}: not a JSON event ({exc.msg})") from None
    return events


def _key(e: dict[str, Any]) -> tuple[Any, ...]:
    return (e["type"], e["rule"], e.get("track_id"), e.get("direction"), e.get("reason"), e["t_frame"])


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    x86, arm, mqtt = (_load(Path(p)) for p in sys.argv[1:])
    checks: list[tuple[str, bool]] = []
    for label, events in (("x86", x86), ("arm64", arm)):
        got = [(e["type"], e["rule"], e.get("track_id"), e.get("direction")) for e in events]
        checks.append((f"{label}: the clip's events {EXPECTED} in {got}", all(x in got for x in EXPECTED)))
    same = [_key(e) for e in arm] == [_key(e) for e in x86]
    checks.append((f"arm64 events equal x86's ({len(arm)} and {len(x86)})", same))
    pairs = zip(arm, x86, strict=False)
    diffs = [abs(a - b) for ea, eb in pairs for a, b in zip(ea["box"], eb["box"], strict=True)]
    worst = max(diffs, default=0.0)
    checks.append((f"boxes within {BOX_ATOL} px of x86's (max {worst:.3g})", worst <= BOX_ATOL))
    carried = [e["id"] for e in mqtt] == [e["id"] for e in arm]
    checks.append((f"MQTT carried the logged events ({len(mqtt)} received)", carried))
    want = ("blazepose", "arm64", "entrance")
    ours = all((e["model"]["name"], e["device"], e["camera"]) == want for e in arm)
    checks.append(("every event from blazepose, device arm64, camera entrance", ours))
    for name, ok in checks:
        print(f"{'ok  ' if ok else 'FAIL'} run: {name}")
    for e in arm:
        print(f"     arm64 event: {_key(e)} box {e['box']}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
