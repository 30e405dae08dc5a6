"""The access log: the JSON lines the other logs write, in batches from a thread of its own, which a failed write
does not stop."""

from __future__ import annotations

import io
import json
import logging
import random
import time
from datetime import UTC, datetime

from service.logs import AccessLog, JsonFormatter, _stamp


class Flaky(io.StringIO):
    """A stream whose first write fails, as a closed pipe's would."""

    failures = 1

    def write(self, text: str) -> int:
        if self.failures:
            self.failures -= 1
            raise BrokenPipeError
        return super().write(text)


def written(stream: io.StringIO, count: int) -> list[dict[str, object]]:
    for _ in range(100):
        lines = stream.getvalue().splitlines()
        if len(lines) >= count:
            return [json.loads(line) for line in lines]
        time.sleep(0.02)
    raise AssertionError(f"{count} lines were not written: {stream.getvalue()!r}")


def test_access_lines_are_the_json_logs_lines_and_a_failed_write_does_not_stop_them() -> None:
    stream = Flaky()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = AccessLog()
    log.start(handler)
    log.write("lost", "GET", "/v1/coverages", 200, 0.5)
    time.sleep(3 * AccessLog.EVERY)  # its batch meets the failed write, and is dropped
    log.write("r-1", "GET", "/v1/coverages/k/timeline", 304, 0.25)
    log.write("r-2", "POST", "/v1/coverages/k/posts", 201, 12.5)
    first, second = written(stream, 2)
    assert [first["request_id"], second["request_id"]] == ["r-1", "r-2"], "the writer went on"
    record = logging.makeLogRecord(
        {"name": "liveline.access", "levelname": "INFO", "msg": "request", "request_id": "r-1", "method": "GET",
         "path": "/v1/coverages/k/timeline", "status": 304, "duration_ms": 0.25, "created": time.time()}
    )  # fmt: skip
    expected = json.loads(JsonFormatter().format(record))
    assert list(first) == list(expected), "the same fields, in the same order"
    assert {k: v for k, v in first.items() if k != "time"} == {k: v for k, v in expected.items() if k != "time"}


def test_a_line_is_stamped_as_datetime_writes_the_time_to_the_millisecond() -> None:
    """`_stamp` makes the date once a second; each time must still read as datetime's own isoformat would."""
    rng = random.Random(20261127)
    edges = [0.0, 1.9999996, 1.0000004, 1764262800.9995, 1764262800.0005004, 1481361540.4479995]
    samples = edges + [rng.uniform(0, 2e9) for _ in range(20_000)] + [1.7e9 + rng.random() for _ in range(20_000)]
    for created in samples:
        assert _stamp(created) == datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"), created
