"""End to end: `edge run` on the demo clip (lossless) with a real Mosquitto; the subscriber gets
the expected events, the payloads match the JSON schema, and the event log matches."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
from broker import Broker, Subscriber
from conftest import require_backend

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "edge" / "alerts" / "schemas" / "event.v2.json").read_text())


def demo_command(broker: Broker, state: Path, clip: Path, *extra: str) -> list[str]:
    """``edge run configs/demo.yaml`` on this test's broker, state folder and clip."""
    sets = [f"mqtt.port={broker.port}", f"state_dir={state}", f"cameras.entrance.source.path={clip}"]
    return ["edge", "run", "configs/demo.yaml", *(a for s in sets for a in ("--set", s)), *extra]


def run_demo(broker: Broker, state: Path, clip: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        demo_command(broker, state, clip, *extra), cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_demo_clip_gives_the_expected_events(
    models_dir: Path, demo_clip: Path, broker: Broker, subscriber: Subscriber, tmp_path: Path
) -> None:
    out = run_demo(broker, tmp_path / "state", demo_clip)
    assert out.returncode == 0, out.stderr
    assert "500 frame(s) processed, 8 event(s)" in out.stderr

    payloads = [json.loads(p) for p in subscriber.wait_for("edge/demo/events", 8)]
    # The astronaut walks in from the left (track 1): across the walkway line at about 5.6 s,
    # into the zone at 6 s, stays there more than 4 s (loitering), walks out of the picture
    # on the right at 13 s; comes back (track 2) at 15 s, crosses the line the other way at
    # 17 s and leaves the zone at 18 s.
    assert [(p["type"], p["rule"], p["track_id"], p["direction"], p["reason"]) for p in payloads] == [
        ("cross", "walkway", 1, "in", None),
        ("new", "person_in_zone", 1, None, None),
        ("new", "loitering", 1, None, None),
        ("end", "person_in_zone", 1, None, "left"),
        ("end", "loitering", 1, None, "left"),
        ("new", "person_in_zone", 2, None, None),
        ("cross", "walkway", 2, "out", None),
        ("end", "person_in_zone", 2, None, "left"),
    ]
    assert {(p["label"], p["camera"]) for p in payloads} == {("person", "entrance")}
    times = [p["t_frame"] for p in payloads]
    windows = [(5, 6.5), (5.5, 7), (9.5, 11), (12, 14), (12, 14), (14, 16.5), (16, 18), (17, 19)]
    assert all(lo < t < hi for t, (lo, hi) in zip(times, windows, strict=True)), times
    assert payloads[2]["duration"] >= 4.0 and payloads[4]["duration"] >= 4.0  # loitering: at least 4 s
    assert payloads[6]["counters"] == {"in": 1, "out": 1}
    assert payloads[1]["episode"] == payloads[3]["episode"] != payloads[5]["episode"]
    assert payloads[1]["zones"] == ["person_in_zone", "loitering"]  # in the order the rules are listed
    for p in payloads:
        jsonschema.validate(p, SCHEMA)
        assert p["model"] == {
            "name": "blazepose",
            "sha256": "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
        }
    assert len({p["id"] for p in payloads}) == 8

    logged = [json.loads(line) for line in (tmp_path / "state" / "events.jsonl").read_text().splitlines()]
    assert logged == payloads
    snaps = sorted((tmp_path / "state" / "snapshots" / "entrance").glob("*.jpg"))
    assert len(snaps) == 5  # one per "new" and "cross"

    assert subscriber.on("edge/demo/available")[:1] == [b"online"]
    assert subscriber.wait_for("edge/demo/available", 2)[-1] == b"stopped"
    assert subscriber.on("edge/demo/entrance/status")[-1] == b"offline"


def test_same_events_on_another_runner_and_speed(
    models_dir: Path, demo_clip: Path, broker: Broker, tmp_path: Path
) -> None:
    """Rule timing runs on frame time: LiteRT (sync) and OpenVINO (async infer queue, several
    frames in flight) process the clip at different speeds and give the same events, with the
    same track ids and line crossings."""
    require_backend("openvino")
    first = run_demo(broker, tmp_path / "a", demo_clip, "--set", "models.person.runner=litert")
    second = run_demo(
        broker,
        tmp_path / "b",
        demo_clip,
        "--set",
        "models.person.runner=openvino",
        "--set",
        "models.person.precision=f32",
        "--set",
        "models.person.async_jobs=3",
        "--set",
        "cameras.entrance.buffer_slots=4",
    )
    assert "blazepose on openvino" in second.stderr
    assert first.returncode == second.returncode == 0

    def times(state: Path) -> list[tuple[str, str, float, int | None, str | None]]:
        return [
            (e["type"], e["rule"], e["t_frame"], e["track_id"], e["direction"])
            for e in map(json.loads, (state / "events.jsonl").read_text().splitlines())
        ]

    assert times(tmp_path / "a") == times(tmp_path / "b") and len(times(tmp_path / "a")) == 8


@pytest.mark.parametrize(
    "runner",
    [
        ("--set", "models.person.runner=litert"),  # one frame at a time
        (
            "--set",
            "models.person.runner=openvino",
            "--set",
            "models.person.async_jobs=3",
            "--set",
            "cameras.entrance.buffer_slots=5",
        ),  # several frames in flight
    ],
    ids=["litert", "openvino-async"],
)
def test_max_frames_processes_exactly_n(
    models_dir: Path, demo_clip: Path, broker: Broker, tmp_path: Path, runner: tuple[str, ...]
) -> None:
    if "openvino" in runner[1]:
        require_backend("openvino")
    out = run_demo(
        broker, tmp_path / "s", demo_clip, "--max-frames", "50", "--set", "mqtt.enabled=false", *runner
    )
    assert out.returncode == 0, out.stderr
    assert "stopped (max frames (50)): 50 frame(s) processed" in out.stderr


def test_sigterm_stops_cleanly_with_exit_0(
    models_dir: Path, demo_clip: Path, broker: Broker, subscriber: Subscriber, tmp_path: Path
) -> None:
    import signal
    import time

    proc = subprocess.Popen(
        demo_command(broker, tmp_path, demo_clip, "--set", "cameras.entrance.source.loop=true"),
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert subscriber.wait_for("edge/demo/events", 1, timeout=60), "no event before SIGTERM"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "received SIGTERM: stopping" in err and "stopped (SIGTERM)" in err
    assert subscriber.wait_for("edge/demo/available", 2)[-1] == b"stopped"
    assert "threads still running" not in err
