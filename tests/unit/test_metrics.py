"""`Tally`, the plain counters the edge counts requests with, shows on /metrics as prometheus_client's own
`Counter` would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

from service.api.metrics import Tally


def exposition(registry: CollectorRegistry) -> list[str]:
    """The lines a scrape reads, without the `_created` samples (times, which differ, and which nothing here reads)."""
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_a_tally_is_exposed_as_a_prometheus_counter_with_the_same_name_labels_and_counts() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    requests = Tally("liveline_http_requests_total", "HTTP requests answered", ("method", "status"), registry=ours)
    reference = Counter("liveline_http_requests_total", "HTTP requests answered", ["method", "status"], registry=theirs)
    statements = Tally("liveline_sql_statements_total", "SQL statements", registry=ours)
    plain = Counter("liveline_sql_statements_total", "SQL statements", registry=theirs)
    assert exposition(ours) == exposition(theirs), "a counter without labels shows 0 from the start"
    for method, status in [("GET", 200), ("GET", 200), ("GET", 304), ("POST", 201), ("other", 405)]:
        requests.inc(method, status)
        reference.labels(method, str(status)).inc()
    for _ in range(3):
        statements.inc()
        plain.inc()
    assert exposition(ours) == exposition(theirs)
    assert requests.value("GET", 200) == 2 and requests.value("GET", 404) == 0 and statements.value() == 3
