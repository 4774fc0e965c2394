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
    assert "500 frame(s) processed, 4 event(s)" in out.stderr

    payloads = [json.loads(p) for p in subscriber.wait_for("edge/demo/events", 4)]
    assert [(p["type"], p["label"], p["rule"], p["camera"]) for p in payloads] == [
        ("new", "person", "person_in_zone", "entrance"),
        ("end", "person", "person_in_zone", "entrance"),
        ("new", "person", "person_in_zone", "entrance"),
        ("end", "person", "person_in_zone", "entrance"),
    ]
    # The astronaut walks into the zone at about 6 s, out at 13 s, back at 15 s, out at 18 s.
    times = [p["t_frame"] for p in payloads]
    assert (
        5.0 < times[0] < 7.5 and 12.0 < times[1] < 14.0 and 14.0 < times[2] < 16.5 and 17.0 < times[3] < 19.0
    )
    for p in payloads:
        jsonschema.validate(p, SCHEMA)
        assert p["model"] == {
            "name": "blazepose",
            "sha256": "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
        }
    assert len({p["id"] for p in payloads}) == 4

    logged = [json.loads(line) for line in (tmp_path / "state" / "events.jsonl").read_text().splitlines()]
    assert logged == payloads
    snaps = sorted((tmp_path / "state" / "snapshots" / "entrance").glob("*.jpg"))
    assert len(snaps) == 2  # one per "new"

    assert subscriber.on("edge/demo/available")[:1] == [b"online"]
    assert subscriber.wait_for("edge/demo/available", 2)[-1] == b"stopped"
    assert subscriber.on("edge/demo/entrance/status")[-1] == b"offline"


def test_same_events_on_another_runner_and_speed(
    models_dir: Path, demo_clip: Path, broker: Broker, tmp_path: Path
) -> None:
    """Rule timing runs on frame time: LiteRT (sync) and OpenVINO (async infer queue, several
    frames in flight) process the clip at different speeds and give the same events."""
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

    def times(state: Path) -> list[tuple[str, float]]:
        return [
            (e["type"], e["t_frame"])
            for e in map(json.loads, (state / "events.jsonl").read_text().splitlines())
        ]

    assert times(tmp_path / "a") == times(tmp_path / "b") and len(times(tmp_path / "a")) == 4


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
