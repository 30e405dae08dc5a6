"""Schema status and migrations: alembic, driven programmatically so the CLI and tests share one path."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from service.store.pool import Connection


def migrations_dir() -> Path:
    """`migrations/` beside the package in a checkout, or shipped inside the wheel."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "migrations", package / "_migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise FileNotFoundError("alembic migrations not found beside the service package")


def sqlalchemy_url(dsn: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(scheme="postgresql+asyncpg"))


def alembic_config(dsn: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(dsn).replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("postgresql://unused")).get_current_head()
    assert head is not None
    return head


def upgrade(dsn: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    command.downgrade(alembic_config(dsn), revision)


async def current_revision(conn: Connection) -> str | None:
    exists = await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
    if not exists:
        return None
    revision = await conn.fetchval("SELECT version_num FROM alembic_version")
    return revision if isinstance(revision, str) else None


async def is_at_head(conn: Connection) -> bool:
    return await current_revision(conn) == head_revision()
