"""JSON logs: one object per line on stdout, with time, level, msg and any extra fields."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone


class JSONFormatter(logging.Formatter):
    """Formats a record as one JSON object; fields passed as extra={"fields": {...}} are merged in."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "msg": record.getMessage().rstrip(),
            # uvicorn logs everything, not only errors, to "uvicorn.error".
            "logger": "uvicorn" if record.name == "uvicorn.error" else record.name,
        }
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False, separators=(",", ":"))


def setup(level: str = "info") -> None:
    """Send every logger (ours, uvicorn's, the drivers') to stdout as JSON."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Requests are logged by app.metrics with the fields the other backends use.
    logging.getLogger("uvicorn.access").disabled = True
