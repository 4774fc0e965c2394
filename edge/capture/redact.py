"""Keep credentials out of logs: ``rtsp://user:pass@host`` -> ``rtsp://***@host``."""

from __future__ import annotations

import logging
import re

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def mask_url(text: str) -> str:
    """Replace the user:password part of every URL in ``text`` by ``***``."""
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)


class RedactingFilter(logging.Filter):
    """A logging filter that masks URL credentials in every formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_url(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
