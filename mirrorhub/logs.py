"""How a mirrorhub process writes its log: readable lines (the default) or, with
``MIRRORHUB_LOG_FORMAT=json``, one JSON object per line for a log collector.

Either way every record carries the current request id (broker/tracing.py) when there is one:
``[9c41...]`` after the logger's name in text, ``"request_id"`` in JSON. A JSON line holds
``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, ``process`` (the pid),
``request_id`` and, for an error with a traceback, ``exc_info``; uvicorn's access lines come
through the same handler.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from broker.tracing import RequestIdFilter
from schemas.errors import ConfigError

FORMATS = ("text", "json")
_TEXT = "%(asctime)s %(levelname)s %(name)s%(rid)s: %(message)s"


class _TextFilter(RequestIdFilter):
    def filter(self, record: logging.LogRecord) -> bool:
        super().filter(record)
        rid = getattr(record, "request_id", None)
        record.rid = f" [{rid}]" if rid else ""
        return True


class _Json(JsonFormatter):
    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(
            timespec="milliseconds")


def log_format(value: str | None) -> str:
    """``MIRRORHUB_LOG_FORMAT``'s value checked: ``text`` (unset) or ``json``."""
    chosen = (value or "text").strip().lower()
    if chosen not in FORMATS:
        raise ConfigError(f"MIRRORHUB_LOG_FORMAT must be text or json, got {value!r}")
    return chosen


def configure(level: str, fmt: str) -> None:
    """Send every record of ``level`` and above to stderr in ``fmt`` (:func:`log_format`)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(_Json(
            ["levelname", "name", "message", "process", "request_id"],
            rename_fields={"levelname": "level", "name": "logger"},
            json_ensure_ascii=False))
    else:
        handler.addFilter(_TextFilter())
        handler.setFormatter(logging.Formatter(_TEXT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
