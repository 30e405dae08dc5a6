"""The baseline: a bare litestar handler, served by granian exactly as `liveline serve` serves Liveline."""

from __future__ import annotations

from litestar import Litestar, get


@get("/hello", sync_to_thread=False)
def hello() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar([hello])
