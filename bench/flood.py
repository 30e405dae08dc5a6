"""A lean HTTP/1.1 load generator for `bench.overload` (publishes, or reader GETs), run in its own process.

Why not httpx: at thousands of requests a second an asyncio client that builds and parses messages in Python
spends more CPU than the server it measures, on the same two cores, and cannot keep an open-loop rate. Here
each request is the same pre-built bytes and a response is read as a status line, headers up to
Content-Length, and that many bytes; keep-alive connections are reused, and a new one is opened only when
every open one is busy.

    python -m bench.flood URL TOKEN --rate R --seconds S      (open loop: R requests/s, whatever the answers)
    python -m bench.flood URL TOKEN --connections N --seconds S   (closed loop: N back to back)
    python -m bench.flood URL - --get --rate R --seconds S       (readers: anonymous GETs of URL)
    python -m bench.flood URL - --made-up-tokens ...             (publishes, each with a token never issued)

Prints one JSON line: answers by status (or error class) and latency percentiles in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import secrets
import time
from urllib.parse import urlsplit

BODY = json.dumps({"body": [{"type": "paragraph", "text": "flood"}]}).encode()


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> int:
        self.writer.write(request)
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        keep = True
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"connection" and value.strip().lower() == b"close":
                keep = False
        if length:
            await self.reader.readexactly(length)
        if not keep:
            raise ConnectionResetError("server closed the connection")
        return status


class Flood:
    def __init__(self, url: str, token: str, timeout: float, get: bool = False, made_up: bool = False) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.made_up = made_up
        self.head = (
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
            if get
            else (
                f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n"
            ).encode()
        )
        self.request = self.head if get else self.head + f"Authorization: Bearer {token}\r\n\r\n".encode() + BODY
        self.timeout = timeout
        self.idle: list[Connection] = []
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.latencies: list[float] = []

    def next_request(self) -> bytes:
        if not self.made_up:
            return self.request
        return self.head + f"Authorization: Bearer ll_{secrets.token_urlsafe(32)}\r\n\r\n".encode() + BODY

    async def one(self) -> None:
        started = time.monotonic()
        connection = self.idle.pop() if self.idle else None
        try:
            async with asyncio.timeout(self.timeout):
                if connection is None:
                    connection = Connection(*await asyncio.open_connection(self.host, self.port))
                status = await connection.exchange(self.next_request())
            self.outcomes[str(status)] += 1
            self.idle.append(connection)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            self.outcomes[type(exc).__name__] += 1
            if connection is not None:
                connection.writer.close()
        self.latencies.append(time.monotonic() - started)

    async def open_loop(self, rate: float, seconds: float) -> None:
        tasks: set[asyncio.Task[None]] = set()
        start = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - start) < seconds:
            while sent < int(elapsed * rate):
                task = asyncio.create_task(self.one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            await asyncio.sleep(0.002)
        await asyncio.gather(*tasks)

    async def closed_loop(self, connections: int, seconds: float) -> None:
        stop = time.monotonic() + seconds

        async def loop() -> None:
            while time.monotonic() < stop:
                await self.one()

        await asyncio.gather(*(loop() for _ in range(connections)))

    def report(self, seconds: float) -> dict[str, object]:
        ordered = sorted(self.latencies)

        def at(fraction: float) -> float:
            return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")

        return {
            "outcomes": dict(self.outcomes),
            "per_second": self.outcomes.get("201", 0) / seconds,
            "p90": at(0.9),
            "p50": at(0.5),
            "p99": at(0.99),
            "max": ordered[-1] if ordered else float("nan"),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--connections", type=int)
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--get", action="store_true")
    parser.add_argument("--made-up-tokens", action="store_true", help="each publish with a token never issued")
    args = parser.parse_args()
    flood = Flood(args.url, args.token, args.timeout, args.get, args.made_up_tokens)
    run = flood.open_loop(args.rate, args.seconds) if args.rate is not None else flood.closed_loop(args.connections, args.seconds)
    asyncio.run(run)
    print(json.dumps(flood.report(args.seconds)))


if __name__ == "__main__":
    main()
