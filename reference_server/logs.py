"""Structured JSON logs, one object per line on standard error, from every logger.

Events of our own go through structlog; they carry `correlation_id`, `connection_id`, `type`
and `subscription` where they apply (bind them with `structlog.contextvars` or pass them as
keywords). Records of the libraries below us (uvicorn, websockets, asyncio, warnings) go
through the standard `logging` root handler that `configure_logging` installs: the same
JSON shape, the traceback as one `exception` string, and at most one line per kind of
record per `log_repeat_window_seconds` (`RepeatFilter`), so a client that can make a
library log (a text frame that is not UTF-8, a malformed HTTP request) cannot flood the
logs. Messages a client causes at will (`CLIENT_FAULTS`) become warnings without a
traceback: they say nothing about the server.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

__all__ = [
    "CLIENT_FAULTS",
    "JsonFormatter",
    "RepeatFilter",
    "configure_logging",
    "get_logger",
]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

CLIENT_FAULTS: dict[str, str] = {
    # uvicorn's websockets-sansio protocol, once per text frame that is not UTF-8 (it then
    # closes 1007, RFC 6455 §8.1), at ERROR with a five-line traceback.
    "Invalid UTF-8 sequence received from client.": "invalid_utf8_text_frame",
    # uvicorn's HTTP protocols, once per request they cannot parse.
    "Invalid HTTP request received.": "invalid_http_request",
    "Unsupported upgrade request.": "unsupported_upgrade_request",
}
"""Library messages a client causes at will, and the event name each is logged under (as a
warning, without traceback)."""

MAX_KINDS = 256
"""Kinds of record `RepeatFilter` tracks at once; past it, the oldest kind is forgotten
(and its next record passes). Bounds the filter's memory whatever the messages hold."""


class RepeatFilter(logging.Filter):
    """Lets one record of each kind through per `window` seconds and counts the others.

    A kind is the logger's name and the message template (`record.msg`, before its
    arguments are filled in). A record that passes carries `suppressed`: how many of its
    kind were dropped since the previous one passed.

    Args:
        window: seconds between two records of one kind (`log_repeat_window_seconds`).
        clock: monotonic time in seconds (tests pass their own).
    """

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self._clock = clock
        #: kind -> (when one last passed, how many were dropped since); insertion-ordered.
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """True to write `record` (then with `record.suppressed` set), False to drop it."""
        kind = (record.name, str(record.msg))
        now = self._clock()
        last = self._seen.get(kind)
        if last is not None and now - last[0] < self.window:
            self._seen[kind] = (last[0], last[1] + 1)
            return False
        record.__dict__["suppressed"] = last[1] if last is not None else 0
        self._seen.pop(kind, None)
        if len(self._seen) >= MAX_KINDS:
            del self._seen[next(iter(self._seen))]
        self._seen[kind] = (now, 0)
        return True


class JsonFormatter(logging.Formatter):
    """Formats a standard `logging` record as one JSON object on one line.

    Keys: `event` (the message, or the `CLIENT_FAULTS` name), `level`, `logger`,
    `timestamp` (UTC, ISO 8601 with `Z`, like structlog's), `suppressed` when
    `RepeatFilter` dropped records of the kind, and `exception` (the traceback, one string)
    except for client faults.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON; never raises, whatever the record holds."""
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the template: keep both, raw
            message = f"{record.msg!r} % {record.args!r}"
        fault = CLIENT_FAULTS.get(message)
        event: dict[str, object] = {
            "event": fault or message,
            "level": "warning" if fault else record.levelname.lower(),
            "logger": record.name,
            "timestamp": datetime.fromtimestamp(record.created, UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ"
            ),
        }
        suppressed = getattr(record, "suppressed", 0)
        if suppressed:
            event["suppressed"] = suppressed
        if record.exc_info and not fault:
            event["exception"] = self.formatException(record.exc_info)
        # ensure_ascii: whatever text a library logs (even lone surrogates) stays one line.
        return json.dumps(event, default=repr)


def configure_logging(level: str, *, repeat_window_seconds: float) -> None:
    """Send JSON log lines at `level` and above to standard error, from every logger.

    Args:
        level: the lowest level written (`debug`, `info`, `warning`, `error`).
        repeat_window_seconds: library records of one kind are written at most once per
            this many seconds (`log_repeat_window_seconds`).

    Idempotent: the root handler is replaced, not added twice. Pass `log_config=None` to
    uvicorn so that it keeps its loggers propagating here instead of installing its own
    plain-text handlers.
    """
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatFilter(repeat_window_seconds))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(_LEVELS[level])
    logging.captureWarnings(True)  # warnings.warn output becomes a record like any other


def get_logger(**bound: object) -> structlog.typing.FilteringBoundLogger:
    """A logger with `bound` key-values on every event."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger().bind(**bound)
    return logger
