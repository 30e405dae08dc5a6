"""JSON logs, one object a line on stderr, each carrying the request id of the request that wrote it.

Records are handed to a writer thread unformatted (logging's QueueHandler/QueueListener), so formatting and
writing an access line per request costs the event loop only the hand-off.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import os
import queue
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

import msgspec

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_encoder = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = getattr(record, "request_id", None) or request_id.get()
        if current:
            entry["request_id"] = current
        for field in ("method", "path", "status", "duration_ms"):
            if hasattr(record, field):
                entry[field] = getattr(record, field)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


_writer_pid: int | None = None


class Handoff(logging.handlers.QueueHandler):
    """Queues the record as it is: QueueHandler would format it here, on the event loop."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()  # the writer thread cannot see this request's context
        return record


def configure(level: str) -> None:
    """Send the `liveline` loggers to stderr as JSON, through a writer thread, and other libraries' (alembic's,
    granian's) to stderr as plain lines, at `level` (idempotent: the CLI and each worker's app call it)."""
    global _writer_pid
    logging.basicConfig(level=level.upper(), format="%(message)s")  # does nothing once the root has a handler
    logger = logging.getLogger("liveline")
    logger.setLevel(level.upper())
    if _writer_pid == os.getpid():
        return
    # A forked worker inherits the handler but not the writer thread: start its own.
    for stale in [h for h in logger.handlers if isinstance(h, Handoff)]:
        logger.removeHandler(stale)
    _writer_pid = os.getpid()
    writer = logging.StreamHandler(sys.stderr)
    writer.setFormatter(JsonFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, writer)
    listener.start()
    atexit.register(listener.stop)  # writes what is still queued
    logger.addHandler(Handoff(records))
    logger.propagate = False
