"""A soak run: a night of breaking news in a few minutes, with the embedded PostgreSQL killed in the middle.

`python -m bench.soak [--minutes 4]` starts `liveline serve` on an embedded data folder (so the supervisor is in
play) and runs, together: publishers (publish, edit, retract, pin), pollers (long polls of `changes`), Server-Sent
Events streams, history readers and an auditor (the global feed, and `verify`). Half-way through it kills the
postmaster with SIGKILL. At the end it prints the answers by class (status, or the client-side error), the
acknowledged writes missing from the log (must be 0), and the serve processes' memory growth per minute after
the first minute. Exit status 1 if any acknowledged write is missing or any answer was a 500.
Not run by CI: it takes minutes. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
import psutil

from bench.polls import NO_QUOTA, free_port, wait_ready

COVERAGES = ("soak-0", "soak-1", "soak-2")
Tally = collections.Counter[str]


def cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"liveline {' '.join(args)}: {done.stderr[-2000:]}")
    return done.stdout.strip()


def classify(tally: Tally, kind: str, outcome: object) -> None:
    tally[f"{kind} {outcome}"] += 1


async def publisher(client: httpx.AsyncClient, token: str, stop: asyncio.Event, acked: set[str], tally: Tally) -> None:
    rng = random.Random()
    mine: dict[str, list[str]] = {c: [] for c in COVERAGES}
    headers = {"Authorization": f"Bearer {token}"}
    while not stop.is_set():
        coverage = rng.choice(COVERAGES)
        base = f"/v1/coverages/{coverage}"
        roll = rng.random()
        try:
            if roll < 0.6 or not mine[coverage]:
                body = {"body": [{"type": "paragraph", "text": f"update {rng.random()}"}]}
                answer = await client.post(f"{base}/posts", json=body, headers=headers)
                if answer.status_code == 201:
                    post_id = answer.json()["id"]
                    acked.add(post_id)
                    mine[coverage].append(post_id)
            elif roll < 0.8:
                target = rng.choice(mine[coverage])
                answer = await client.patch(f"{base}/posts/{target}", json={"title": "edited"}, headers=headers)
            elif roll < 0.9:
                pin = {"post_id": rng.choice(mine[coverage])}
                answer = await client.put(f"{base}/pinned", json=pin, headers=headers)
            else:
                target = mine[coverage].pop(rng.randrange(len(mine[coverage])))
                answer = await client.post(f"{base}/posts/{target}/retract", json={"reason": "soak"}, headers=headers)
            classify(tally, "write", answer.status_code)
        except httpx.HTTPError as exc:
            classify(tally, "write", type(exc).__name__)
        await asyncio.sleep(rng.uniform(0.01, 0.05))


async def poller(client: httpx.AsyncClient, stop: asyncio.Event, tally: Tally) -> None:
    coverage = random.choice(COVERAGES)
    cursor: str | None = None
    while not stop.is_set():
        try:
            if cursor is None:
                cursor = (await client.get(f"/v1/coverages/{coverage}")).json()["cursor"]
            answer = await client.get(f"/v1/coverages/{coverage}/changes", params={"since": cursor, "wait": 5})
            classify(tally, "poll", answer.status_code)
            if answer.status_code == 200:
                cursor = answer.json()["cursor"]
            else:
                await asyncio.sleep(0.5)
        except httpx.HTTPError as exc:
            classify(tally, "poll", type(exc).__name__)
            await asyncio.sleep(0.5)


async def streamer(client: httpx.AsyncClient, stop: asyncio.Event, tally: Tally) -> None:
    coverage = random.choice(COVERAGES)
    last_id: str | None = None
    while not stop.is_set():
        headers = {"Last-Event-ID": last_id} if last_id else {}
        try:
            async with client.stream("GET", f"/v1/coverages/{coverage}/stream", headers=headers) as answer:
                classify(tally, "stream", answer.status_code)
                async for line in answer.aiter_lines():
                    if line.startswith("id: "):
                        last_id = line[4:]
                        tally["stream events"] += 1
                    if stop.is_set():
                        return
        except httpx.HTTPError as exc:
            classify(tally, "stream", type(exc).__name__)
        await asyncio.sleep(0.5)  # as EventSource reconnects, resuming with Last-Event-ID


async def historian(client: httpx.AsyncClient, stop: asyncio.Event, acked: set[str], tally: Tally) -> None:
    while not stop.is_set():
        await asyncio.sleep(0.2)
        if not acked:
            continue
        post_id = random.choice(sorted(acked))
        for coverage in COVERAGES:
            try:
                answer = await client.get(f"/v1/coverages/{coverage}/posts/{post_id}/history")
            except httpx.HTTPError as exc:
                classify(tally, "history", type(exc).__name__)
                break
            if answer.status_code != 404:
                classify(tally, "history", answer.status_code)
                break


async def auditor(client: httpx.AsyncClient, token: str, stop: asyncio.Event, tally: Tally) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    after: str | None = None
    last_verify = time.monotonic()
    while not stop.is_set():
        try:
            params = {"limit": 500, **({"after": after} if after else {})}
            answer = await client.get("/v1/events", params=params, headers=headers)
            classify(tally, "feed", answer.status_code)
            if answer.status_code == 200:
                after = answer.json()["next"]
            if time.monotonic() - last_verify > 20:
                verified = await client.get("/v1/audit/verify", headers=headers)
                outcome = verified.json()["ok"] if verified.status_code == 200 else verified.status_code
                classify(tally, "verify", outcome)
                last_verify = time.monotonic()
        except httpx.HTTPError as exc:
            classify(tally, "feed", type(exc).__name__)
        await asyncio.sleep(1)


def rss_mib(pid: int) -> float:
    parent = psutil.Process(pid)
    return sum(p.memory_info().rss for p in (parent, *parent.children(recursive=True))) / 2**20


async def soak(base: str, serve_pid: int, data_dir: Path, editor: str, auditor_token: str, minutes: float) -> int:
    tally: Tally = collections.Counter()
    acked: set[str] = set()
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        for coverage in COVERAGES:
            await client.post("/v1/coverages", json={"id": coverage, "title": coverage},
                              headers={"Authorization": f"Bearer {editor}"})  # fmt: skip
        tasks = [asyncio.create_task(publisher(client, editor, stop, acked, tally)) for _ in range(4)]
        tasks += [asyncio.create_task(poller(client, stop, tally)) for _ in range(20)]
        tasks += [asyncio.create_task(streamer(client, stop, tally)) for _ in range(50)]
        tasks += [asyncio.create_task(historian(client, stop, acked, tally)) for _ in range(2)]
        tasks.append(asyncio.create_task(auditor(client, auditor_token, stop, tally)))
        started = time.monotonic()
        memory: list[tuple[float, float]] = []
        killed = False
        while (elapsed := time.monotonic() - started) < minutes * 60:
            memory.append((elapsed, rss_mib(serve_pid)))
            if not killed and elapsed >= minutes * 30:
                pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
                os.kill(pid, signal.SIGKILL)
                killed = True
                print(f"{elapsed:6.1f}s  kill -9 of the postmaster (pid {pid})", flush=True)
            print(f"{elapsed:6.1f}s  {len(acked):6} acknowledged posts, serve RSS {memory[-1][1]:.1f} MiB", flush=True)
            await asyncio.sleep(10)
        stop.set()
        await asyncio.wait(tasks, timeout=40)
    lines = (data_dir / "postgres" / "postmaster.pid").read_text().splitlines()
    conn = await asyncpg.connect(f"postgresql://postgres@/liveline?host={lines[4]}&port={lines[3]}")
    try:
        logged = {r["post_id"] for r in await conn.fetch("SELECT post_id FROM events WHERE type = 'post.published'")}
    finally:
        await conn.close()
    missing = len(acked - logged)
    late = [(t, m) for t, m in memory if t >= 60]
    growth = (late[-1][1] - late[0][1]) / ((late[-1][0] - late[0][0]) / 60) if len(late) > 1 else float("nan")
    print("\nanswers by class:")
    for name, count in sorted(tally.items()):
        print(f"  {name:<40} {count:>8,}")
    print(f"\nacknowledged posts: {len(acked):,}; missing from the log: {missing}")
    print(f"serve RSS: {memory[0][1]:.1f} MiB at start, {memory[-1][1]:.1f} MiB at the end; "
          f"growth after the first minute: {growth:+.2f} MiB/min")  # fmt: skip
    server_errors = sum(count for name, count in tally.items() if name.endswith(" 500"))
    return 1 if missing or server_errors else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=4.0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="liveline-soak-", dir="/tmp"))
    env = {**os.environ, "LIVELINE_DATA_DIR": str(folder), "LIVELINE_LOG_LEVEL": "WARNING", **NO_QUOTA}
    editor = cli("token", "create", "--name", "soak-desk", "--role", "editor", env=env)
    auditor_token = cli("token", "create", "--name", "soak-audit", "--role", "auditor", env=env)
    port = free_port()
    serve = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port", str(port)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/ready", serve)
        status = asyncio.run(soak(base, serve.pid, folder, editor, auditor_token, args.minutes))
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        shutil.rmtree(folder, ignore_errors=True)
    raise SystemExit(status)


if __name__ == "__main__":
    main()
