"""JSON logs, one object a line on stderr, each carrying the request id of the request that wrote it.

Records are handed to a writer thread unformatted (logging's QueueHandler/QueueListener), so formatting and
writing a line costs the event loop only the hand-off. The access log, a line per request, is lighter still
(`AccessLog`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import logging.handlers
import math
import os
import queue
import sys
import threading
import time
from collections import deque
from contextvars import ContextVar
from typing import Any

import msgspec

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_encoder = msgspec.json.Encoder()


def _entry(created: float, level: str, logger: str, message: str) -> dict[str, object]:
    """The fields every line starts with, in order (the access log's `_AccessLine` starts with the same)."""
    return {"time": _stamp(created), "level": level, "logger": logger, "message": message}


_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def _stamp(created: float) -> str:
    """`created` as `datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")` writes it (rounded
    to the microsecond as datetime rounds, then cut to the millisecond), its date and time made once a second:
    the access log stamps thousands of lines a second, and datetime took a third of a line's cost."""
    global _second
    fraction, whole = math.modf(created)  # as datetime splits and rounds it
    micros, seconds = round(fraction * 1_000_000), int(whole)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    # Read once: the access log's writer and the other logs' writer are two threads, and may stamp lines of two
    # different seconds at once.
    second = _second
    if second[0] != seconds:
        second = _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{second[1]}.{micros // 1000:03d}+00:00"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = _entry(record.created, record.levelname.lower(), record.name, record.getMessage())
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
    ACCESS.enabled = logger.isEnabledFor(logging.INFO)
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
    ACCESS.start(writer)


class AccessLog:
    """The access log: a line per answered request, as the JSON logs write it (logger `liveline.access`, message
    `request`, with the request id, method, path, status and duration), written in batches by a thread of its own.

    Hand-written rather than a logging call per request: that made a LogRecord on the event loop and woke the
    writer thread once a request, and the two threads handing the GIL to each other halved the conditional polls a
    process answers (10,200 a second against 18,700 without the log, served side by side). Here a request costs
    the event loop a tuple on a deque; the thread wakes every `EVERY` seconds and writes what came in with one
    write, holding the log handler's lock, so its lines never interleave with other log lines.
    """

    EVERY = 0.05
    KEEP = 100_000
    """Lines waiting at most: if the log cannot be written as fast as requests come, the oldest go."""

    def __init__(self) -> None:
        self.enabled = False
        self._pending: deque[tuple[float, str, str, str, int, float]] = deque(maxlen=self.KEEP)
        self._handler: logging.StreamHandler[Any] | None = None
        self._writing = threading.Lock()

    def write(self, request_id: str, method: str, path: str, status: int, duration_ms: float) -> None:
        self._pending.append((time.time(), request_id, method, path, status, duration_ms))

    def start(self, handler: logging.StreamHandler[Any]) -> None:
        """Write through `handler`'s stream, from a thread of this process's own (a forked worker needs its own)."""
        self._handler = handler
        # A forked worker starts afresh: not its parent's lines, and not its parent's lock, which the parent's
        # writer may have held at the fork.
        self._pending = deque(maxlen=self.KEEP)
        self._writing = threading.Lock()
        threading.Thread(target=self._run, name="liveline access log", daemon=True).start()
        atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            time.sleep(self.EVERY)
            with contextlib.suppress(Exception):  # a batch that could not be made is dropped: the writer goes on
                self.flush()

    def flush(self) -> None:
        """Write what is waiting. A batch that cannot be written is dropped, as logging's handlers drop a record
        (`Handler.handleError`), and the writer goes on."""
        with self._writing:
            pending = self._pending
            taken = [pending.popleft() for _ in range(len(pending))]  # the event loop may append meanwhile
            lines = [_AccessLine(_stamp(t[0]), "info", "liveline.access", "request", *t[1:]) for t in taken]
            if not lines or self._handler is None:
                return
            text = _encoder.encode_lines(lines).decode()
            self._handler.acquire()
            try:
                self._handler.stream.write(text)
                self._handler.flush()
            except Exception:  # a log that cannot be written must not stop the writer
                return
            finally:
                self._handler.release()


class _AccessLine(msgspec.Struct):
    """An access line: `_entry`'s fields, then the request's, in the order `JsonFormatter` writes them."""

    time: str
    level: str
    logger: str
    message: str
    request_id: str
    method: str
    path: str
    status: int
    duration_ms: float


ACCESS = AccessLog()
