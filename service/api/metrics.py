"""`/metrics` for Prometheus: litestar's request metrics plus the SQL statements this process ran.

The statement counter is what proves a matching conditional poll costs no database work.
"""

from __future__ import annotations

from typing import Any

from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from prometheus_client import Counter

SQL_STATEMENTS = Counter("liveline_sql_statements_total", "SQL statements run by this process's pool")


def count_statement(_record: Any) -> None:
    SQL_STATEMENTS.inc()


def prometheus() -> PrometheusConfig:
    return PrometheusConfig(
        app_name="liveline",
        prefix="liveline",
        group_path=True,
        exclude=["/metrics", "/v1/coverages/[^/]+/stream"],
    )


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False
