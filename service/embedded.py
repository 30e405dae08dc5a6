"""The embedded default PostgreSQL: a real server the service starts itself, data under LIVELINE_DATA_DIR.

pgserver (PostgreSQL 16 from PyPI) is the default; where it is unavailable the server binaries on PATH or
under /usr/lib/postgresql/*/bin are used. Every `liveline` command shares one server per data folder,
also while `serve` runs; the last process to let go stops it, and a start after kill -9 recovers.
"""

from __future__ import annotations

import asyncio
import glob
import json
import logging
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from service.config import Settings
from service.store import schema

log = logging.getLogger("liveline.embedded")
logging.getLogger("pgserver").setLevel(logging.WARNING)
DATABASE = "liveline"


class Server(Protocol):
    def admin_dsn(self) -> str: ...
    def stop(self) -> None: ...


class PgServer:
    """PostgreSQL from the pgserver wheel; pgserver counts the processes using it."""

    def __init__(self, pgdata: Path) -> None:
        from pgserver import get_server  # type: ignore[attr-defined]

        _forget_dead_handles(pgdata / ".handle_pids.json")
        self._server: Any = get_server(pgdata, cleanup_mode="stop")

    def admin_dsn(self) -> str:
        dsn: str = self._server.get_uri("postgres")
        return dsn

    def stop(self) -> None:
        self._server.cleanup()


class SystemPostgres:
    """PostgreSQL binaries installed on the machine; stopped by the process that started it."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self.bin = _system_bin()
        self.user = _unprivileged_user()
        self.started_here = False
        pgdata.mkdir(mode=0o700, exist_ok=True)
        if self.user:
            _let_through(pgdata.parent)
            shutil.chown(pgdata, self.user, self.user)
        if not (pgdata / "PG_VERSION").exists():
            self._run("initdb", "-D", str(pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8")
        if self._run("pg_ctl", "-D", str(pgdata), "status", check=False).returncode != 0:
            (pgdata / "postmaster.pid").unlink(missing_ok=True)  # left by a kill -9
            options = f"-h '' -k {pgdata}"
            self._run("pg_ctl", "-D", str(pgdata), "-o", options, "-l", str(pgdata / "log"), "-w", "start")
            self.started_here = True

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        command = [str(self.bin / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, check=check, capture_output=True)  # noqa: S603 (fixed binaries)

    def admin_dsn(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.pgdata}"

    def stop(self) -> None:
        if self.started_here:
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop", check=False)


def _let_through(folder: Path) -> None:
    """The unprivileged server user must be able to reach its data folder (search permission only)."""
    for part in (folder, *folder.parents):
        mode = part.stat().st_mode
        if not mode & stat.S_IXOTH:
            part.chmod(mode | stat.S_IXOTH)


def _forget_dead_handles(handles: Path) -> None:
    """pgserver keeps a list of processes using the server; a kill -9 leaves its pid behind forever."""
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except ValueError:
        pids = []
    alive = [pid for pid in pids if isinstance(pid, int) and _alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _system_bin() -> Path:
    on_path = shutil.which("pg_ctl")
    candidates = ([str(Path(on_path).parent)] if on_path else []) + sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), reverse=True
    )
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise RuntimeError("no PostgreSQL found: install pgserver or PostgreSQL, or set DATABASE_URL")


def _unprivileged_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    subprocess.run(["useradd", "--system", "--no-create-home", "pgserver"], check=True)  # noqa: S607
    return "pgserver"


def _open_server(pgdata: Path) -> Server:
    if os.environ.get("LIVELINE_EMBEDDED_ENGINE") != "system":
        try:
            return PgServer(pgdata)
        except ImportError:
            log.info("pgserver unavailable; using the PostgreSQL binaries on this machine")
    return SystemPostgres(pgdata)


async def _ensure_database(admin_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await conn.close()


@contextmanager
def embedded_database(data_dir: str) -> Iterator[str]:
    """Start (or join) the embedded server and yield the DSN of its `liveline` database."""
    folder = Path(data_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    server = _open_server(folder / "postgres")
    try:
        admin = server.admin_dsn()
        asyncio.run(_ensure_database(admin))
        dsn = admin.replace("/postgres?", f"/{DATABASE}?", 1)
        schema.upgrade(dsn)  # the embedded database is ours: always at head
        yield dsn
    finally:
        server.stop()


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """DATABASE_URL when set, otherwise the embedded database for as long as the block runs."""
    if settings.database_url:
        yield settings.database_url
        return
    with embedded_database(settings.data_dir) as dsn:
        yield dsn
