"""The preview server against a running daemon (real model, real clip): the stream delivers
frames, nothing is copied for the preview while nobody watches, status and events are served,
the editor's calls check and save, and requests from elsewhere are refused."""

from __future__ import annotations

import base64
import http.client
import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.alerts.actions import EventEnvelope, SnapshotAction
from edge.config import load_config
from edge.daemon.app import Application
from edge.overlay import Shape, rule_colour
from edge.preview.server import BOUNDARY, host_allowed
from tests.conftest import wait_until

ZONE = "[[0.55, 0.25], [0.95, 0.25], [0.95, 1], [0.55, 1]]"


def config_text(tmp_path: Path, clip: Path, preview: str, realtime: bool = False) -> str:
    return f"""\
state_dir: {tmp_path}/state
models:
  p: {{path: blazepose, runner: litert}}
cameras:
  gate:
    source: {{type: file, path: "{clip}", loop: true, realtime: {str(realtime).lower()}}}
    model: p
    masks:
      - [[0.0, 0.0], [0.2, 0.0], [0.2, 0.2]]
rules:
  zone:
    cameras: [gate]
    labels: [person]
    zone: {ZONE}
mqtt: {{enabled: false}}
preview: {preview}
"""


def start_daemon(
    tmp_path: Path, clip: Path, preview: str, realtime: bool = False
) -> tuple[Application, threading.Thread]:
    """A running edge (its main loop on a thread) for ``config_text``; stop with ``stop_daemon``."""
    path = tmp_path / "edge.yaml"
    path.write_text(config_text(tmp_path, clip, preview, realtime))
    app = Application(load_config(path))
    app.start()
    runner = threading.Thread(target=app.run)
    runner.start()
    return app, runner


def stop_daemon(app: Application, runner: threading.Thread) -> None:
    app._signals.put(signal.SIGTERM)
    runner.join(60)
    assert not runner.is_alive(), "edge did not stop"


@pytest.fixture
def daemon(models_dir: Path, demo_clip: Path, tmp_path: Path) -> Iterator[Application]:
    app, runner = start_daemon(tmp_path, demo_clip, "{enabled: true, port: 0, fps: 10}")
    try:
        yield app
    finally:
        stop_daemon(app, runner)


def request(
    app: Application, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    assert app.preview is not None
    conn = http.client.HTTPConnection("127.0.0.1", app.preview.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def post_json(app: Application, path: str, data: object) -> tuple[int, dict[str, object]]:
    status, _, body = request(
        app, "POST", path, json.dumps(data).encode(), {"Content-Type": "application/json"}
    )
    return status, json.loads(body)


def read_stream_frames(app: Application, camera: str, n: int) -> list[tuple[int, np.ndarray]]:
    """The first ``n`` parts of the camera's MJPEG stream: (frame seq, decoded image)."""
    assert app.preview is not None
    conn = http.client.HTTPConnection("127.0.0.1", app.preview.port, timeout=60)
    conn.request("GET", f"/stream/{camera}.mjpg")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
    frames = []
    try:
        while len(frames) < n:
            line = resp.fp.readline()
            if line.strip() != f"--{BOUNDARY}".encode():
                continue
            headers = {}
            while (line := resp.fp.readline().strip()) != b"":
                k, _, v = line.decode().partition(":")
                headers[k.strip().lower()] = v.strip()
            data = resp.fp.read(int(headers["content-length"]))
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None
            frames.append((int(headers["x-frame-seq"]), image))
    finally:
        conn.close()
    return frames


def test_no_frame_is_copied_for_the_preview_while_nobody_watches(daemon: Application) -> None:
    wait_until(lambda: daemon.frames_processed() >= 30, 180, "30 frames processed")
    assert daemon.tap is not None
    assert daemon.tap.offered == 0  # the workers asked, and copied nothing
    frames = read_stream_frames(daemon, "gate", 4)
    seqs = [s for s, _ in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4  # four different frames, in order
    assert daemon.tap.offered >= 4
    w = frames[0][1].shape[1]
    assert w <= 960  # scaled to preview.width


def test_live_detections_carry_track_ids(daemon: Application) -> None:
    """The camera's tracker runs between decoding and rules: what the worker hands on (here,
    to the preview) has track ids once the person is followed."""
    tap = daemon.tap
    assert tap is not None

    def tracked() -> bool:
        tap.watch("gate")
        frame = tap.latest("gate")
        ids = None if frame is None else frame.dets.tracker_id
        return ids is not None and bool((ids >= 1).any())

    wait_until(tracked, 240, "a detection with a track id")


def test_status_frame_and_events(daemon: Application) -> None:
    status, _, body = request(daemon, "GET", "/")
    assert status == 200 and b"edge preview" in body
    status, headers, body = request(daemon, "GET", "/app.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    status, headers, body = request(daemon, "GET", "/frame/gate.jpg?raw=1")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR) is not None

    # The astronaut walks into the zone: an event with its picture shows up on the page.
    def event_listed() -> bool:
        _, _, b = request(daemon, "GET", "/api/status")
        return any(e["type"] == "new" and e["picture"] for e in json.loads(b)["events"])

    wait_until(event_listed, 240, "a new event with a picture in /api/status")
    st = json.loads(request(daemon, "GET", "/api/status")[2])
    cam = st["cameras"][0]
    assert cam["name"] == "gate" and cam["state"] == "streaming"
    assert cam["rules"] == ["zone"]
    assert [s["kind"] for s in cam["shapes"]] == ["mask", "zone"]
    event = next(e for e in st["events"] if e["picture"])
    status, headers, body = request(daemon, "GET", f"/event/{event['id']}.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert request(daemon, "GET", "/event/nope.jpg")[0] == 404
    assert request(daemon, "GET", "/frame/nope.jpg")[0] == 404
    assert request(daemon, "GET", "/stream/nope.mjpg")[0] == 404


def test_editor_checks_and_saves_beside_the_config(daemon: Application, tmp_path: Path) -> None:
    config = tmp_path / "edge.yaml"
    original = config.read_text()
    drawing = {"kind": "zone", "camera": "gate", "rule": "door", "labels": "person",
               "points": [[0.1, 0.1], [0.4, 0.1], [0.4, 0.5]]}  # fmt: skip
    status, out = post_json(daemon, "/api/check", drawing)
    assert status == 200 and out["ok"] and out["problems"] == []
    assert out["yaml"] == (
        "rules:\n  door:\n    cameras: [gate]\n    labels: [person]\n    zone: [[0.1, 0.1], [0.4, 0.1], [0.4, 0.5]]\n"
    )
    assert not list(tmp_path.glob("edge.preview-*.yaml"))  # a check writes nothing
    status, out = post_json(daemon, "/api/save", drawing)
    assert status == 200 and out["ok"]
    saved = Path(str(out["saved"]))
    assert saved.parent == tmp_path and saved.name.startswith("edge.preview-")
    assert config.read_text() == original  # never over the config
    assert "door:" in saved.read_text() and load_config(saved).config.rules["door"].zone is not None
    status, out = post_json(daemon, "/api/check", {**drawing, "points": [[0.1, 0.1]]})
    assert status == 200 and not out["ok"] and "at least 3 points" in str(out["problems"])
    status, out = post_json(daemon, "/api/check", {**drawing, "camera": "nope"})
    assert status == 400 and "unknown camera" in str(out["error"])


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "code"),
    [
        ("GET", "/api/status", {"Host": "evil.example:80"}, None, 421),  # DNS rebinding
        ("POST", "/api/check", {"Content-Type": "text/plain"}, b"{}", 415),
        (
            "POST",
            "/api/check",
            {"Content-Type": "application/json", "Origin": "http://evil.example"},
            b"{}",
            403,
        ),
        ("POST", "/api/check", {"Content-Type": "application/json"}, b"not json", 400),
        ("POST", "/api/nothing", {"Content-Type": "application/json"}, b"{}", 404),
        ("GET", "/etc/passwd", {}, None, 404),
    ],
)
def test_requests_from_elsewhere_are_refused(
    daemon: Application, method: str, path: str, headers: dict[str, str], body: bytes | None, code: int
) -> None:
    assert request(daemon, method, path, body, headers)[0] == code


def test_basic_auth_when_credentials_are_set(models_dir: Path, demo_clip: Path, tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(
        config_text(tmp_path, demo_clip, "{enabled: true, port: 0, username: me, password: s3cret}")
    )
    app = Application(load_config(path))
    app.start()
    try:
        assert request(app, "GET", "/")[0] == 401
        bad = base64.b64encode(b"me:wrong").decode()
        assert request(app, "GET", "/", headers={"Authorization": f"Basic {bad}"})[0] == 401
        good = base64.b64encode(b"me:s3cret").decode()
        assert request(app, "GET", "/", headers={"Authorization": f"Basic {good}"})[0] == 200
    finally:
        app.stop()


@pytest.mark.parametrize(
    ("preview", "error"),
    [
        ("{enabled: true, host: 0.0.0.0}", "set preview.username and preview.password"),
        ("{enabled: true, host: 192.0.2.1, username: me}", "set preview.username and preview.password"),
        (
            "{enabled: true, host: 0.0.0.0, username: me, password: ''}",
            "set preview.username and preview.password",
        ),
        ("{enabled: true, fps: 0}", "preview.fps"),
        ("{enabled: true, port: 70000}", "preview.port"),
    ],
)
def test_preview_config_errors_name_the_field(
    tmp_path: Path, demo_clip: Path, preview: str, error: str
) -> None:
    from edge.errors import ConfigError

    path = tmp_path / "edge.yaml"
    path.write_text(config_text(tmp_path, demo_clip, preview))
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert any(error in issue and str(path) in issue for issue in exc.value.issues), exc.value.issues


def test_snapshots_draw_the_rules_zone_and_the_masks(tmp_path: Path) -> None:
    image = np.zeros((600, 1200, 3), np.uint8)
    zone = Shape("zone", "door", ((0.5, 0.1), (0.9, 0.1), (0.9, 0.9), (0.5, 0.9)), rule_colour("door"))
    mask = Shape("mask", "mask 1", ((0.0, 0.0), (0.3, 0.0), (0.3, 0.3)), (128, 128, 128))
    payload = {"type": "new", "camera": "gate", "rule": "door", "id": "0123456789", "label": "person",
               "score": 0.9, "box": [660.0, 180.0, 900.0, 480.0], "ts": "2026-12-01T00:00:00Z"}  # fmt: skip
    action = SnapshotAction(tmp_path, crop=False, quality=95)
    assert action.handle(EventEnvelope(payload, image, (zone, mask)))
    (written,) = (tmp_path / "gate").glob("*.jpg")
    snap = cv2.imread(str(written))
    # The zone's right edge (x = 0.9) is drawn in the rule's colour; the mask is shaded.
    x = round(0.9 * 1199)
    near = snap[300, x - 3 : x + 4].astype(int)
    assert np.abs(near - np.array(rule_colour("door"))).max(axis=1).min() < 40
    assert snap[30, 200].mean() > 30  # shaded grey, not the black frame
    assert snap[570, 30].mean() < 10  # outside every shape: the frame as it was


def test_edge_preview_command_serves_without_actions(
    models_dir: Path, demo_clip: Path, tmp_path: Path
) -> None:
    """``edge preview``: the page is served, frames stream, and nothing is written or sent."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "preview", str(repo / "configs" / "demo.yaml"), "--port", "0",
         "--set", f"state_dir={tmp_path}/state", "--set", f"cameras.entrance.source.path={demo_clip}",
         "--set", "models.person.runner=litert", "--set", "mqtt.port=1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert " on http://127.0.0.1:" in line, (line, proc.stderr and proc.stderr.read())
        port = int(line.rsplit(":", 1)[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", "/frame/entrance.jpg")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Content-Type") == "image/jpeg"
        assert cv2.imdecode(np.frombuffer(resp.read(), np.uint8), cv2.IMREAD_COLOR) is not None
        conn.close()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "mqtt" not in err.lower()  # no broker was tried
    state = tmp_path / "state"
    assert not (state / "events.jsonl").exists() and not (state / "snapshots").exists()


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["--host", "0.0.0.0"],
            "--host/--port: Value error, preview on '0.0.0.0' is reachable from the network",
        ),
        (["--port", "70000"], "must be 0 to 65535"),
    ],
)
def test_edge_preview_refuses_an_open_address_without_login(
    demo_clip: Path, tmp_path: Path, args: list[str], error: str
) -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-m", "edge", "preview", str(repo / "configs" / "demo.yaml"), *args,
         "--set", f"state_dir={tmp_path}/state", "--set", f"cameras.entrance.source.path={demo_clip}"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 2
    assert error in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("header", "configured", "allowed"),
    [
        ("127.0.0.1:8090", "127.0.0.1", True),
        ("localhost:8090", "127.0.0.1", True),
        ("[::1]:8090", "::1", True),
        ("[::1]", "127.0.0.1", True),
        ("192.168.1.20:8090", "0.0.0.0", True),  # a board reached by its address (auth is required there)
        ("board.local:8090", "board.local", True),
        ("evil.example:8090", "127.0.0.1", False),  # DNS rebinding: a name that is not ours
        ("", "127.0.0.1", False),
        ("[bad", "127.0.0.1", False),
    ],
)
def test_host_header(header: str, configured: str, allowed: bool) -> None:
    assert host_allowed(header, configured) is allowed


def test_a_same_origin_post_is_accepted(daemon: Application) -> None:
    assert daemon.preview is not None
    origin = f"http://127.0.0.1:{daemon.preview.port}"
    body = json.dumps({"kind": "mask", "camera": "gate", "points": [[0, 0], [0.1, 0], [0.1, 0.1]]}).encode()
    status, _, out = request(
        daemon, "POST", "/api/check", body, {"Content-Type": "application/json", "Origin": origin}
    )
    assert status == 200 and json.loads(out)["ok"]


def test_a_refused_requests_body_is_never_run_as_a_request(daemon: Application, tmp_path: Path) -> None:
    """A cross-site form post (text/plain skips the browser's CORS check) whose body is a whole
    second request: the first is refused and the connection closed, so the second never runs."""
    import socket

    assert daemon.preview is not None
    inner = json.dumps({"kind": "mask", "camera": "gate", "points": [[0, 0], [0.1, 0], [0.1, 0.1]]})
    smuggled = (
        f"POST /api/save HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(inner)}\r\n\r\n{inner}"
    )
    outer = (
        f"POST /api/check HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {len(smuggled)}\r\n\r\n{smuggled}"
    )
    with socket.create_connection(("127.0.0.1", daemon.preview.port), timeout=60) as sock:
        sock.sendall(outer.encode())
        answer = b""
        while chunk := sock.recv(65536):  # the server closes the connection after its refusal
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 415 ") and answer.count(b"HTTP/1.1 ") == 1
    assert b"Connection: close" in answer
    assert not list(tmp_path.glob("edge.preview-*.yaml"))


def test_stop_ends_open_pages_at_once(models_dir: Path, demo_clip: Path, tmp_path: Path) -> None:
    """A page polls the status on a keep-alive connection and reads the stream: stopping edge
    must not wait for either (it used to wait for the page to go away)."""
    app, runner = start_daemon(tmp_path, demo_clip, "{enabled: true, port: 0}")
    assert app.preview is not None
    port = app.preview.port
    polling = threading.Event()
    polling.set()

    def poll() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            while polling.is_set():
                conn.request("GET", "/api/status")
                conn.getresponse().read()
                polling.wait(0.2)
        except (OSError, http.client.HTTPException):
            pass  # the daemon stopped: the connection is gone
        finally:
            conn.close()

    def watch() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("GET", "/stream/gate.mjpg")
            resp = conn.getresponse()
            while resp.fp.readline():
                pass
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()

    pages = [threading.Thread(target=poll), threading.Thread(target=watch)]
    for t in pages:
        t.start()
    try:
        wait_until(lambda: app.tap is not None and app.tap.offered >= 3, 120, "frames streamed to the page")
        app._signals.put(signal.SIGTERM)
        runner.join(60)
        assert not runner.is_alive(), "stop waited for the open page"
    finally:
        polling.clear()
        if runner.is_alive():
            app._signals.put(signal.SIGTERM)
            runner.join(120)
        for t in pages:
            t.join(60)
