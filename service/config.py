"""Settings: one frozen Struct read from the environment (documented in the README)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Annotated

import msgspec
from msgspec import Struct

ENVIRONMENT = {
    "database_url": "DATABASE_URL",
    "data_dir": "LIVELINE_DATA_DIR",
    "pool_min_size": "LIVELINE_POOL_MIN_SIZE",
    "pool_max_size": "LIVELINE_POOL_MAX_SIZE",
    "cache_max_age": "LIVELINE_CACHE_MAX_AGE",
    "cache_stale_while_revalidate": "LIVELINE_CACHE_STALE_WHILE_REVALIDATE",
    "max_body_bytes": "LIVELINE_MAX_BODY_BYTES",
    "http1_buffer_bytes": "LIVELINE_HTTP1_BUFFER_BYTES",
    "poll_interval": "LIVELINE_POLL_INTERVAL",
    "rendered_cache_size": "LIVELINE_RENDERED_CACHE_SIZE",
    "stream_keepalive": "LIVELINE_STREAM_KEEPALIVE",
    "log_level": "LIVELINE_LOG_LEVEL",
    "cors_origins": "LIVELINE_CORS_ORIGINS",
    "metrics_token": "LIVELINE_METRICS_TOKEN",
    "public_url": "LIVELINE_PUBLIC_URL",
    "write_quota_per_minute": "LIVELINE_WRITE_QUOTA_PER_MINUTE",
    "write_quota_burst": "LIVELINE_WRITE_QUOTA_BURST",
    "statement_timeout": "LIVELINE_STATEMENT_TIMEOUT",
    "lock_timeout": "LIVELINE_LOCK_TIMEOUT",
    "idle_in_transaction_timeout": "LIVELINE_IDLE_IN_TRANSACTION_TIMEOUT",
    "pool_acquire_timeout": "LIVELINE_POOL_ACQUIRE_TIMEOUT",
    "max_writes_in_flight": "LIVELINE_MAX_WRITES_IN_FLIGHT",
    "overload_writes_per_second": "LIVELINE_OVERLOAD_WRITES_PER_SECOND",
    "signing_key": "LIVELINE_SIGNING_KEY",
    "log_name": "LIVELINE_LOG_NAME",
}


HTTP1_BUFFER_LEAST = 8192
"""The least HTTP/1 buffer granian (hyper) takes."""


class BadConfiguration(ValueError):
    """An environment variable that does not read as its setting."""


class Settings(Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    """Any PostgreSQL >= 14; unset means the embedded PostgreSQL under `data_dir`."""
    data_dir: str = ".liveline"
    pool_min_size: int = 1
    pool_max_size: int = 10
    cache_max_age: int = 5
    """Seconds a shared cache or browser may serve a public read without asking again."""
    cache_stale_while_revalidate: int = 30
    max_body_bytes: int = 256 * 1024
    http1_buffer_bytes: Annotated[int, msgspec.Meta(ge=HTTP1_BUFFER_LEAST)] = HTTP1_BUFFER_LEAST
    """granian's HTTP/1 buffer per connection (`--http1-buffer-size`): a request's head must fit in it (431
    otherwise; bodies are read through it in pieces). At the least granian allows, an open stream costs the
    process about 17 KiB; at any larger size about 28 KiB (bench/fanout.py's floor)."""
    poll_interval: int = 5
    """Seconds a reader should wait between polls of a live coverage (advised in responses)."""
    rendered_cache_size: int = 2_000
    """Rendered read answers kept in memory per process (LRU)."""
    stream_keepalive: float = 15.0
    """Seconds between keep-alive comments on an idle event stream."""
    log_level: str = "INFO"
    public_url: str = "http://127.0.0.1:8000"
    """Where readers reach the service (e.g. https://live.example.org): absolute URLs in answers (JSON-LD) are
    built from it, never from a request's Host header. `liveline serve` defaults it to its own address."""
    write_quota_per_minute: int = 600
    """Writes one token may make per minute in each process (a steady rate, refilled continuously)."""
    write_quota_burst: int = 60
    """Writes one token may make at once before the steady rate applies."""
    statement_timeout: float = 30.0
    """Seconds any one statement of the service may run (auditor queries included)."""
    lock_timeout: float = 10.0
    """Seconds a write may wait for its coverage's lock: past it the write is shed with a 503, not queued."""
    idle_in_transaction_timeout: float = 10.0
    """Seconds a transaction may sit idle: an open write transaction would hold the global feed back."""
    pool_acquire_timeout: float = 5.0
    """Seconds a request may wait for a database connection before it is answered 503."""
    max_writes_in_flight: int = 4
    """Writes a process works on at once; more are answered 503 with Retry-After at once (load shedding). Keep
    it below `pool_max_size`: writes to one coverage queue on its lock anyway, and a reader's render must always
    find a connection."""
    overload_writes_per_second: float = 10.0
    """While overloaded (writes were refused in the last second), the writes a process starts a second; the rest
    are refused like those beyond `max_writes_in_flight`. Writes taken hold up the readers who share the event
    loop: this keeps readers' latency while a flood lasts, at the writers' expense (0: no limit). Ten is one
    token's default write quota a second; the README's Performance section has the curve behind it."""
    signing_key: str | None = None
    """The transparency log's Ed25519 signer key (`PRIVATE+KEY+<name>+<id>+<key>`, Go's sumdb/note form); unset,
    the key in `<data_dir>/log-signing-key` is used, made on first start."""
    log_name: str | None = None
    """The name a new signing key gets, and so the prefix of every checkpoint's origin (`<name>/<coverage>`);
    unset, the host of `public_url`."""
    metrics_token: str | None = None
    """Bearer token that /metrics asks for; unset, /metrics is not served (it shows the service's internals)."""
    cors_origins: list[str] = []
    """Browser origins (e.g. https://cms.example.org) that may call write and auditor routes; public reads
    answer every origin. From a comma-separated list; `*` opens everything (not for production)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        raw: dict[str, object] = {field: environ[var] for field, var in ENVIRONMENT.items() if environ.get(var)}
        if isinstance(origins := raw.get("cors_origins"), str):
            raw["cors_origins"] = [origin.strip() for origin in origins.split(",") if origin.strip()]
        try:
            return msgspec.convert(raw, cls, strict=False)
        except msgspec.ValidationError as exc:
            named = re.sub(r"`\$\.(\w+)`", lambda m: ENVIRONMENT.get(m[1], m[1]), str(exc))
            raise BadConfiguration(f"bad configuration: {named}") from exc
