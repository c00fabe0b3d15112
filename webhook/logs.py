"""One JSON line per log record, so a decision can be found by its uid.

Decision records carry names only (uid, kind, namespace/name, verdict,
duration): object contents stay out of the log, because a Pki's fields are the
application team's business and a Secret's never belong in a log.
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
    """``{"time", "level", "logger", "message", ...extra fields}``; exceptions as type only.

    A traceback can quote values from the object being validated, so only the
    exception type and the innermost location are logged.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS_ATTRIBUTE, None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            entry["error"] = type(error).__name__
            tb = error.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            if tb is not None:
                entry["error_at"] = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
        return json.dumps(entry, ensure_ascii=True, default=str)


def configure(level: int = logging.INFO) -> None:
    """Send every logger (ours and uvicorn's) through one JSON handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
