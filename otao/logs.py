"""Structured logs: one JSON object per line, or text for humans (``make run``).

Both show the structured fields a call passes in ``extra`` (what was audited, which push job,
counts, durations): JSON as keys of the object, text as ``key=value`` after the message.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from otao.observability import tracing

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields = {key: value for key, value in vars(record).items() if key not in _STANDARD}
    # Formatted where it was logged: the current span is the request's (docs/observability.md).
    trace_id = tracing.current_trace_id()
    if trace_id is not None:
        fields["traceId"] = trace_id
    return fields


def _text_value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    # Quoted when a reader could not tell where it ends (or it is empty).
    if not text or any(c.isspace() or c in '="' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...`` (values with spaces quoted)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = " ".join(f"{k}={_text_value(v)}" for k, v in _fields(record).items())
        return f"{line} {fields}" if fields else line


def configure(level: str, as_json: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
