"""The inference worker shares one model fairly between cameras: it takes the next ready frame
from each camera in turn (round-robin), so when the worker is behind every camera gets the same
share, and when it is not every camera gets all its frames.

Counted, not timed: the run stops after a fixed number of frames (``--max-frames``), and each
camera's count of frames run through the model is compared with the others', with generous
tolerances (a capture thread may briefly have no frame ready at its turn on a busy machine).
Real video (the demo clip), real models; ``litert`` is pinned where the test depends on speed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import require_backend

from edge.config import parse_config
from edge.daemon.app import Application

CAMERAS = 4
PER_CAMERA = 25


@pytest.mark.parametrize(
    ("case", "buffer", "realtime", "fps", "runner", "jobs"),
    [
        ("lossless rings, worker behind: every ring full", "lossless", False, None, "litert", None),
        ("lossy rings, worker behind: frames overwritten", "latest", False, None, "litert", None),
        ("live-like cameras at 5 fps, worker keeps up", "latest", True, 5, "litert", None),
        ("async requests in flight (OpenVINO), lossy rings", "latest", False, None, "openvino", 2),
    ],
)
def test_every_camera_gets_its_share(
    models_dir: Path,
    demo_clip: Path,
    tmp_path: Path,
    case: str,
    buffer: str,
    realtime: bool,
    fps: float | None,
    runner: str,
    jobs: int | None,
) -> None:
    require_backend(runner)
    source = f'{{type: file, path: "{demo_clip}", loop: true, realtime: {str(realtime).lower()}}}'
    cap = f", fps: {fps}" if fps else ""
    cams = "\n".join(
        f"  c{i}: {{source: {source}, model: f, buffer: {buffer}, buffer_slots: 4{cap}}}"
        for i in range(CAMERAS)
    )
    extra = f", async_jobs: {jobs}" if jobs else ""
    text = f"""
state_dir: "{tmp_path}"
status_interval: 1h
models: {{f: {{path: blazeface, runner: {runner}{extra}}}}}
cameras:
{cams}
mqtt: {{enabled: false}}
actions: {{event_log: false}}
"""
    app = Application(parse_config(text, "fair.yaml"), max_frames=CAMERAS * PER_CAMERA)
    app.start()
    try:
        result = app.run()
    finally:
        app.stop()
    counts = {name: ch.inferred for name, ch in app.channels.items()}
    assert result.frames == CAMERAS * PER_CAMERA, case
    assert sum(counts.values()) == CAMERAS * PER_CAMERA, case
    assert min(counts.values()) >= 0.6 * max(counts.values()), f"{case}: {counts}"
