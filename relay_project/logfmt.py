"""A log formatter that appends Relay's structured `extra={...}` fields as key=value pairs."""

from __future__ import annotations

import logging

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {
            key: value for key, value in record.__dict__.items() if key not in _STANDARD
        }
        if not extras:
            return line
        pairs = " ".join(f"{key}={value}" for key, value in sorted(extras.items()))
        return f"{line} [{pairs}]"
