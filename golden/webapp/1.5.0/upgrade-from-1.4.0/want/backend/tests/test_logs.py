"""JSON log lines."""

from __future__ import annotations

import json
import logging
import sys

from app.logs import JSONFormatter


def test_one_json_object_with_fields():
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "request %s", ("done",), None)
    record.fields = {"method": "GET", "status": 200}
    line = JSONFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["msg"] == "request done"
    assert entry["level"] == "info"
    assert entry["time"].endswith("Z")
    assert (entry["method"], entry["status"]) == ("GET", 200)


def test_exceptions_stay_on_one_line():
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = logging.LogRecord("app", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(JSONFormatter().format(record))
    assert "ValueError" in entry["error"]
