"""The preview's HTTP server: the page, each camera's MJPEG stream, status, recent events and
the zone editor's check/save calls.

Opt-in (``preview.enabled``) and on loopback unless the config names another address together
with a username and password (HTTP basic auth). Requests that change something (``POST``) must
carry a JSON body and come from the page's own origin: a web site open in the same browser
cannot make them (no CORS is answered), and a ``Host`` header naming another host is refused
(DNS rebinding).

Streams are ``multipart/x-mixed-replace`` JPEGs at most ``fps`` per second, scaled to at most
``width`` pixels; each frame is encoded once however many viewers there are.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import json
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from edge import __version__
from edge.config.schema import EdgeConfig, PreviewConfig
from edge.errors import EdgeError
from edge.overlay import camera_shapes, css_colour
from edge.preview.editor import Drawing, check_drawing, read_config_text, save_beside
from edge.preview.tap import PreviewFrame, PreviewTap, encode_jpeg, render, scaled
from edge.telemetry.figures import Figures

log = logging.getLogger("edge.preview")

BOUNDARY = "edgeframe"
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript")}
MAX_BODY = 64 * 1024
WAIT_FRAME = 10.0  # seconds a single-frame request waits for the camera's next frame


EVENT_FIELDS = ("id", "type", "camera", "rule", "label", "score", "ts", "track_id", "direction")


@dataclass(frozen=True)
class PreviewSource:
    """What the server reads from the daemon, each call giving the current value."""

    figures: Callable[[], Figures]
    config: Callable[[], EdgeConfig]
    config_path: Path | None
    overrides: tuple[str, ...] = ()


class _Encoded:
    """The JPEG of the latest rendered frame per (camera, raw): shared by all viewers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, bool], tuple[PreviewFrame, bytes]] = {}

    def get(self, frame: PreviewFrame, raw: bool, width: int, quality: int) -> bytes:
        key = (frame.camera, raw)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] is frame:
                return hit[1]
        image = scaled(frame.image, width)[0] if raw else render(frame, width)
        data = encode_jpeg(image, quality)
        with self._lock:
            self._cache[key] = (frame, data)
        return data


class PreviewServer:
    """Serves the preview from its own threads; ``close()`` ends every stream at once."""

    def __init__(self, tap: PreviewTap, source: PreviewSource, cfg: PreviewConfig) -> None:
        self.tap = tap
        self.source = source
        self.cfg = cfg
        self.stopping = threading.Event()
        self.encoded = _Encoded()
        self._rates = _Rates()
        self._server = _bind(cfg.host, cfg.port, self)
        self.host = cfg.host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="preview", daemon=True)
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        self._thread.start()
        log.info("preview on %s", self.url)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stopping.set()
        self.tap.close()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.drop_connections()  # a page's keep-alive connection would hold its thread
        self._server.server_close()  # joins the request threads, which end at once now

    # -- what the page reads -------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        fig = self.source.figures()
        cfg = self.source.config()
        rates = self._rates.update(fig)
        infer = {m.name: m.infer_ms_avg for m in fig.models}
        cameras = []
        for c in fig.cameras:
            cam = cfg.cameras.get(c.name)
            latest = self.tap.latest(c.name)
            shapes = camera_shapes(c.name, cfg.rules, cfg.cameras)
            cameras.append({
                "name": c.name,
                "state": c.state,
                "error": c.error,
                "fps": round(rates.get(c.name, 0.0), 1),
                "infer_ms": round(infer.get(cam.model, 0.0), 1) if cam else None,
                "processed": c.frames_processed,
                "dropped": c.frames_dropped,
                "events": c.events,
                "size": None if latest is None else [latest.image.shape[1], latest.image.shape[0]],
                "shapes": [
                    {"kind": s.kind, "name": s.name, "points": s.points, "colour": css_colour(s.colour)}
                    for s in shapes
                ],
                "rules": sorted(r for r, rc in cfg.rules.items() if c.name in rc.cameras),
            })  # fmt: skip
        events = [
            {
                **{k: e.payload.get(k) for k in EVENT_FIELDS},
                "picture": e.picture is not None,
            }
            for e in reversed(self.tap.events())
        ]
        return {
            "device": fig.device,
            "version": __version__,
            "healthy": fig.healthy,
            "problems": list(fig.problems),
            "config": str(self.source.config_path) if self.source.config_path else None,
            "cameras": cameras,
            "events": events,
            "fps_cap": self.cfg.fps,
        }

    def check(self, body: Any, save: bool) -> tuple[int, dict[str, Any]]:
        path = self.source.config_path
        if path is None:
            return 400, {"error": "this preview was started without a config file"}
        try:
            drawing = Drawing.from_json(body)
        except ValueError as exc:
            return 400, {"error": str(exc)}
        if drawing.camera not in self.source.config().cameras:
            return 400, {"error": f"unknown camera {drawing.camera!r}"}
        try:
            text = read_config_text(path)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return 200, {"yaml": "", "problems": [f"{path}: cannot read: {reason}"], "ok": False}
        result = check_drawing(text, str(path), drawing, self.source.overrides)
        out: dict[str, Any] = {"yaml": result.snippet, "problems": list(result.problems), "ok": result.ok}
        if result.note:
            out["note"] = result.note
        if save and result.ok:
            try:
                out["saved"] = str(save_beside(path, result.candidate))
                log.info("preview: wrote %s (%s on camera %s)", out["saved"], drawing.kind, drawing.camera)
            except OSError as exc:
                out["ok"] = False
                out["problems"] = [f"{path.parent}: cannot write a new file there: {exc.strerror or exc}"]
        return 200, out


class _Rates:
    """Processed frames per second per camera, from the difference between two figures."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[float, dict[str, int]] | None = None
        self._rates: dict[str, float] = {}

    def update(self, fig: Figures) -> dict[str, float]:
        now = time.monotonic()
        counts = {c.name: c.frames_processed for c in fig.cameras}
        with self._lock:
            if self._last is None:
                self._rates = {n: v / max(fig.uptime, 1e-3) for n, v in counts.items()}
                self._last = (now, counts)
            elif now - self._last[0] >= 1.0:
                dt = now - self._last[0]
                self._rates = {n: (v - self._last[1].get(n, 0)) / dt for n, v in counts.items()}
                self._last = (now, counts)
            return dict(self._rates)


def host_allowed(header: str, configured: str) -> bool:
    """The request's ``Host`` names this server: localhost, the configured host, or an IP
    address (DNS rebinding needs a host *name* that resolves to us; an address cannot)."""
    try:
        name = urlsplit("//" + header.strip()).hostname
    except ValueError:
        return False
    if not name:
        return False
    if name in ("localhost", configured.lower()):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _static(name: str) -> bytes:
    return (resources.files("edge.preview") / "static" / name).read_bytes()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 30  # a viewer that stops reading is dropped

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("preview: " + format, *args)

    # -- plumbing --------------------------------------------------------------------------------

    def _send(self, code: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        if code >= 400 or self.server.preview.stopping.is_set():
            # A refused request's body is never read: close, so it cannot pass for a request.
            self.close_connection = True
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, data: Any) -> None:
        self._send(code, json.dumps(data).encode("utf-8"), "application/json")

    def _error(self, code: int, message: str) -> None:
        self._send(code, (message + "\n").encode("utf-8"), "text/plain; charset=utf-8")

    def _allowed(self) -> bool:
        preview = self.server.preview
        cfg = preview.cfg
        if not host_allowed(self.headers.get("Host") or "", cfg.host):
            self._error(421, f"this preview answers to {cfg.host}, localhost or 127.0.0.1 only")
            return False
        if cfg.username and cfg.password is not None:
            want = f"{cfg.username}:{cfg.password.get_secret_value()}".encode()
            got = self.headers.get("Authorization", "")
            ok = False
            if got.startswith("Basic "):
                try:
                    ok = hmac.compare_digest(base64.b64decode(got[6:], validate=True), want)
                except ValueError:
                    ok = False
            if not ok:
                self._send(401, b"login required\n", "text/plain", {"WWW-Authenticate": 'Basic realm="edge"'})
                return False
        return True

    # -- GET -------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._allowed():
            return
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        preview = self.server.preview
        try:
            if path in STATIC:
                name, ctype = STATIC[path]
                self._send(200, _static(name), ctype)
            elif path == "/api/status":
                self._json(200, preview.status())
            elif path.startswith("/stream/") and path.endswith(".mjpg"):
                self._stream(path[len("/stream/") : -len(".mjpg")])
            elif path.startswith("/frame/") and path.endswith(".jpg"):
                self._frame(path[len("/frame/") : -len(".jpg")], raw="raw" in query)
            elif path.startswith("/event/") and path.endswith(".jpg"):
                data = preview.tap.event_jpeg(path[len("/event/") : -len(".jpg")], preview.cfg.quality)
                if data is None:
                    self._error(404, "no picture for this event")
                else:
                    self._send(200, data, "image/jpeg")
            else:
                self._error(404, "not found")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception:
            log.exception("preview: %s failed", path)
            self.close_connection = True

    def _camera_known(self, camera: str) -> bool:
        if camera in self.server.preview.source.config().cameras:
            return True
        self._error(404, f"no camera {camera!r}")
        return False

    def _frame(self, camera: str, raw: bool) -> None:
        """One JPEG of the camera's next processed frame (waits up to WAIT_FRAME seconds)."""
        if not self._camera_known(camera):
            return
        preview = self.server.preview
        tap = preview.tap
        was_watched = camera in tap.watching()
        tap.watch(camera)
        frame = tap.latest(camera)
        if frame is None or not was_watched:  # what is kept may be old: wait for a fresh one
            frame = tap.wait_frame(camera, frame, WAIT_FRAME) or frame
        if frame is None:
            self._error(503, f"camera {camera!r} has no frame yet")
            return
        cfg = preview.cfg
        data = preview.encoded.get(frame, raw, cfg.width, cfg.quality)
        self._send(200, data, "image/jpeg", {"X-Frame-Seq": str(frame.seq)})

    def _stream(self, camera: str) -> None:
        if not self._camera_known(camera):
            return
        preview = self.server.preview
        tap, cfg = preview.tap, preview.cfg
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        frame: PreviewFrame | None = None
        while not preview.stopping.is_set():
            tap.watch(camera)
            nxt = tap.wait_frame(camera, frame, 1.0)
            if nxt is None:  # no new frame: is the viewer still there, and the camera?
                if self._client_gone() or camera not in preview.source.config().cameras:
                    return
                continue
            frame = nxt
            data = preview.encoded.get(frame, False, cfg.width, cfg.quality)
            head = (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n"
                f"X-Frame-Seq: {frame.seq}\r\n\r\n"
            )
            self.wfile.write(head.encode("ascii") + data + b"\r\n")
            self.wfile.flush()

    def _client_gone(self) -> bool:
        """The viewer closed the connection (it sends nothing else while it reads a stream)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    # -- POST ------------------------------------------------------------------------------------

    def do_POST(self) -> None:
        if not self._allowed():
            return
        path = urlsplit(self.path).path
        if path not in ("/api/check", "/api/save"):
            self._error(404, "not found")
            return
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            self._error(415, "send JSON (Content-Type: application/json)")
            return
        origin = self.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != self.headers.get("Host"):
            self._error(403, "cross-origin requests are refused")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._error(413, f"the body must be 1 to {MAX_BODY} bytes")
            return
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            self._error(400, "the body is not JSON")
            return
        try:
            code, out = self.server.preview.check(body, save=path == "/api/save")
        except Exception:
            log.exception("preview: %s failed", path)
            code, out = 500, {"error": "the check failed; see the daemon's log"}
        self._json(code, out)


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(
        self, family: socket.AddressFamily, address: tuple[str, int], preview: PreviewServer
    ) -> None:
        self.address_family = family
        self.preview = preview
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        threading.current_thread().name = "preview-request"
        with self._open_lock:
            self._open.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)

    def drop_connections(self) -> None:
        """Shut every open connection down, so each request thread ends now."""
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _bind(host: str, port: int, preview: PreviewServer) -> _Server:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        return _Server(family, (host, port), preview)
    except OSError as exc:
        raise EdgeError(f"preview: cannot listen on {where}: {exc.strerror or exc}") from None
