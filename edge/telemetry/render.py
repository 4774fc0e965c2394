"""Figures as text for people (the status line) and as the MQTT ``stats`` payload.

Both are pure functions of a ``Figures`` snapshot. The payload follows
``edge/alerts/schemas/stats.v1.json``; fields added since the first version are optional there.
"""

from __future__ import annotations

from typing import Any

from edge.alerts.payload import iso_utc
from edge.telemetry.figures import CameraFigures, Figures

STATS_SCHEMA = 1
MAX_PROBLEMS = 3  # in the status line; the stats payload carries them all
MAX_PROBLEM_CHARS = 120


def _rate(count: int, seconds: float) -> float:
    return round(count / max(seconds, 1e-6), 2)


def _one_line(text: str, limit: int) -> str:
    """Whitespace (newlines in exception messages included) collapsed; cut at ``limit`` with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def status_line(f: Figures) -> str:
    """``1/1 camera(s) streaming, 65.4 fps processed, outbox 0`` and, when unhealthy,
    ``; PROBLEM: ...`` with the first few problems, on one line (it also goes to systemd STATUS=)."""
    streaming = sum(c.state == "streaming" for c in f.cameras)
    fps = f.frames_processed / max(f.uptime, 1e-6)
    text = f"{streaming}/{len(f.cameras)} camera(s) streaming, {fps:.1f} fps processed"
    if f.outbox is not None:
        text += f", outbox {f.outbox.depth}"
    if not f.healthy:
        shown = [_one_line(p, MAX_PROBLEM_CHARS) for p in f.problems[:MAX_PROBLEMS]]
        if len(f.problems) > MAX_PROBLEMS:
            shown.append(f"(+{len(f.problems) - MAX_PROBLEMS} more)")
        text += "; PROBLEM: " + ("; ".join(shown) if shown else "unhealthy")
    return text


def _camera(c: CameraFigures, uptime: float) -> dict[str, Any]:
    return {
        "state": c.state,
        "frames_read": c.frames_read,
        "processed": c.frames_processed,
        "fps_in": _rate(c.frames_read, uptime),
        "fps_processed": _rate(c.frames_processed, uptime),
        "skipped": c.frames_skipped,
        "gated": c.frames_gated,
        "dropped": c.frames_dropped,
        "reconnects": c.reconnects,
        "restarts": c.restarts,
        "last_frame_age": None if c.last_frame_age is None else round(c.last_frame_age, 3),
        "events": c.events,
        "error": c.error,
    }


def stats_payload(f: Figures) -> dict[str, Any]:
    """The MQTT ``stats`` message (schema ``stats.v1.json``)."""
    out: dict[str, Any] = {
        "schema": STATS_SCHEMA,
        "device": f.device,
        "ts": iso_utc(f.ts),
        "uptime": round(f.uptime, 1),
        "cameras": {c.name: _camera(c, f.uptime) for c in f.cameras},
        "models": {
            m.name: {
                "inference_ms": round(m.infer_ms_avg, 3),
                "processed": m.processed,
                "restarts": m.restarts,
            }
            for m in f.models
        },
    }
    if f.outbox is not None:
        o = f.outbox
        out["outbox"] = {
            "depth": o.depth,
            "bytes": o.bytes,
            "dropped": o.dropped,
            "oldest_age": None if o.oldest_age is None else round(o.oldest_age, 1),
            "write_failures": o.write_failures,
            "corrupt_recovered": o.corrupt_recovered,
        }
    if f.mqtt is not None:
        m = f.mqtt
        out["mqtt"] = {
            "status": m.status,
            "connected": m.connected,
            "sent": m.sent,
            "acked": m.acked,
            "resent": m.resent,
        }
    a = f.actions
    out["actions"] = {
        "queue_depth": a.queue_depth,
        "dropped": a.dropped,
        "failures": dict(a.failures),
        "files_removed": a.files_removed,
    }
    if a.commands is not None:
        c = a.commands
        out["actions"]["commands"] = {
            "started": c.started,
            "succeeded": c.succeeded,
            "failed": c.failed,
            "timed_out": c.timed_out,
            "dropped": c.dropped,
            "running": c.running,
            "queued": c.queued,
            "exit_codes": {str(code): n for code, n in c.exit_codes},
        }
    out["threads"] = [
        {"name": t.name, "kind": t.kind, "alive": t.alive, "restarts": t.restarts, "last_error": t.last_error}
        for t in f.threads
    ]
    out["healthy"] = f.healthy
    out["problems"] = list(f.problems)
    return out
