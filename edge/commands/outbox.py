"""``edge outbox stats|list|purge STATE_DIR``: what is waiting to be sent."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from edge.alerts.outbox import OutboxStore
from edge.errors import EdgeError


def _open(state_dir: Path) -> OutboxStore:
    if not (state_dir / OutboxStore.FILENAME).exists():
        raise EdgeError(f"{state_dir}: no outbox here ({OutboxStore.FILENAME} not found)")
    return OutboxStore(state_dir)


def cmd_outbox(action: str, state_dir: Path, limit: int, as_json: bool, yes: bool) -> int:
    store = _open(state_dir)
    try:
        if action == "stats":
            stats = store.stats()
            if as_json:
                print(json.dumps(asdict(stats)))
            else:
                age = "-" if stats.oldest_age is None else f"{stats.oldest_age:.0f} s"
                print(f"{stats.path}: {stats.depth} waiting ({stats.bytes} bytes), oldest {age}, "
                      f"{stats.dropped} dropped since created")  # fmt: skip
        elif action == "list":
            for row in store.pending(limit):
                payload = json.loads(row.alert.payload)
                if as_json:
                    print(json.dumps({"seq": row.seq, "topic": row.alert.topic, "payload": payload}))
                else:
                    what = f"{payload.get('type', '')} {payload.get('camera', '')}/{payload.get('rule', '')}"
                    print(f"{row.seq:>8} {row.alert.topic} {what} {payload.get('ts', '')} id={row.alert.id}")
        else:
            if not yes:
                raise EdgeError("purge deletes every waiting alert; add --yes to confirm")
            print(f"purged {store.purge()} alert(s)")
    finally:
        store.close()
    return 0
