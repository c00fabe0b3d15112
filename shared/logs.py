"""Structured logs for both processes: one JSON object per line.

Lines carry names (uid, kind, namespace/name, reasons, serials), never object
contents or key material: a Pki's fields are the application team's business
and a Secret's never belong in a log. For the same reason an exception is
logged as its type and innermost location, not a traceback, which can quote
values.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

# Extra fields travel as one mapping under this attribute: LogRecord already
# has attributes such as ``name`` that a plain ``extra`` must not overwrite.
FIELDS_ATTRIBUTE = "fields"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...extra fields}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        extra = getattr(record, FIELDS_ATTRIBUTE, None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            entry["error"] = type(error).__name__
            tb = error.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            if tb is not None:
                entry["error_at"] = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        return json.dumps(entry, ensure_ascii=True, default=str)


def configure(level: int = logging.INFO, adopt: tuple[str, ...] = ()) -> None:
    """Send every logger through one JSON handler on stderr.

    ``adopt`` names libraries' loggers (uvicorn's) that install handlers of
    their own; theirs are removed so their lines come out as JSON too.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in adopt:
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True


def fields(**values: Any) -> dict[str, Any]:
    """``log.info("msg", extra=fields(namespace=..., name=...))``; None values are left out."""
    return {FIELDS_ATTRIBUTE: {k: v for k, v in values.items() if v is not None}}
