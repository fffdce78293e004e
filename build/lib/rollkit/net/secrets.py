"""Keys never leave the process: every message that could carry one passes through `redact`."""

from __future__ import annotations

import logging

_KNOWN: set[str] = set()
MIN_SECRET_LENGTH = 6


def register_secret(value: str | None) -> None:
    if value and len(value) >= MIN_SECRET_LENGTH:
        _KNOWN.add(value)


def redact(text: str) -> str:
    for secret in _KNOWN:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    """Attached to rollkit's log handlers: a last line of defence if a key ever reaches a message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _KNOWN:
            record.msg = redact(record.getMessage())
            record.args = ()
        return True
