"""Baselines served by granian exactly as `liveline serve` serves Liveline: a bare litestar handler (`app`,
bench/polls.py), and a do-nothing held stream (`hold`, bench/fanout.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Litestar, get


@get("/hello", sync_to_thread=False)
def hello() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar([hello])


async def hold(
    scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]], send: Callable[..., Any]
) -> None:
    """The floor of an open stream: an ASGI app that answers every request with the first comment of a Liveline
    stream and then holds the connection, doing nothing, until the client leaves (bench/fanout.py)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    await send({"type": "http.response.body", "body": b": liveline stream\n\n", "more_body": True})
    while (await receive())["type"] != "http.disconnect":
        pass
