"""`provide_*` functions: what handlers receive by name."""

from __future__ import annotations

import asyncpg
from litestar.datastructures import State
from litestar.di import Provide

from service.config import Settings


def provide_pool(state: State) -> asyncpg.Pool:
    pool: asyncpg.Pool = state.pool
    return pool


def provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


DEPENDENCIES = {
    "pool": Provide(provide_pool, sync_to_thread=False),
    "settings": Provide(provide_settings, sync_to_thread=False),
}
