"""The `liveline` command: the same pieces as the service, no second implementation."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import resource
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import click
import msgspec
from litestar.types import Receive, Scope, Send
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from service import audit, logs, witness
from service.app import create_app, served
from service.config import BadConfiguration, Settings
from service.domain.note import NoteError
from service.embedded import DataFolderFromAnotherMajor, database_url
from service.projections.rebuild import RebuildBusy, RebuildResult, rebuild_online
from service.store import schema, tokens
from service.store.pool import Connection, connect

T = TypeVar("T")


def _with_connection(dsn: str, work: Callable[[Connection], Awaitable[T]]) -> T:
    async def run() -> T:
        conn = await connect(dsn)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


def worker_app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """granian's factory in each worker: the app, and the worker ends when `liveline serve` dies.

    PR_SET_PDEATHSIG through ctypes because neither granian nor the standard library offers it; without it
    a kill -9 of `serve` would leave workers holding the port and database connections.
    """
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    app = served(create_app(worker=True))
    tune_garbage_collector()
    return app


def tune_garbage_collector() -> None:
    """Collect young objects every 50,000 allocations instead of 700, and leave startup objects out of every scan.

    Ten thousand open streams keep hundreds of thousands of objects alive, and each change allocates a few per
    stream: with CPython's defaults the collector walked them so often that it took most of the CPU of a fan-out
    (bench/fanout.py, 10,000 streams: 126 µs of server CPU per delivery with the defaults, 34 with this). What
    a stream allocates is freed by reference counting; cycles wait a little longer to be found.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


_UNITS = {"d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1)}


def _lifetime(text: str) -> timedelta:
    """`90d`, `12h`, `30m`: a token's lifetime."""
    number, unit = text[:-1], text[-1:]
    if not number.isdigit() or unit not in _UNITS or int(number) == 0:
        raise click.BadParameter("use a number and d, h or m, e.g. 90d", param_hint="--expires-in")
    return int(number) * _UNITS[unit]


LISTEN_BACKLOG = 65_535


def raise_open_files_limit() -> int:
    """Every open stream is a file descriptor: lift the soft limit to the hard one and return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1_048_576
    if soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return soft


@contextmanager
def _database(
    *, migrate: bool = False, require_head: bool = True, supervise: bool = False, as_owner: bool = False
) -> Iterator[str]:
    """The DSN every command works on: DATABASE_URL or the embedded database, migrated to head (or refused)."""
    try:
        with database_url(Settings.from_env(), supervise, as_owner) as dsn:
            if migrate:
                schema.upgrade(dsn)
            if require_head and not _with_connection(dsn, schema.is_at_head):
                raise click.ClickException(
                    "the database is not migrated to head; run `liveline migrate` (or `liveline serve --migrate`)"
                )
            yield dsn
    except DataFolderFromAnotherMajor as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def main() -> None:
    """Liveline: an event-sourced backend for live-coverage pages."""
    try:
        settings = Settings.from_env()
    except BadConfiguration as exc:
        raise click.ClickException(str(exc)) from exc
    logs.configure(settings.log_level)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.option("--migrate", "migrate_first", is_flag=True, help="Migrate an external DATABASE_URL to head first.")
def serve(host: str, port: int, workers: int, migrate_first: bool) -> None:
    """Serve the HTTP API through granian (ASGI, uvloop); embedded PostgreSQL unless DATABASE_URL is set."""
    from granian.constants import Interfaces, Loops
    from granian.http import HTTP1Settings
    from granian.server import Server

    settings = Settings.from_env()
    with _database(migrate=migrate_first, supervise=True) as dsn:
        os.environ["DATABASE_URL"] = dsn
        os.environ.setdefault("LIVELINE_PUBLIC_URL", f"http://{host}:{port}")
        where = "external" if settings.database_url else "embedded"
        click.echo(f"liveline: serving http://{host}:{port} (database {where})")
        open_files = raise_open_files_limit()
        Server(
            "service.cli:worker_app",
            factory=True,
            address=host,
            port=port,
            workers=workers,
            interface=Interfaces.ASGI,
            loop=Loops.uvloop,
            log_access=False,
            # Streams and long polls are open requests: granian's defaults (1,024 queued, backlog/workers in flight)
            # would stall the 1,025th reader and every publish behind it. The kernel caps the queue at somaxconn.
            backlog=LISTEN_BACKLOG,
            backpressure=max(open_files - 256, 1024) // workers,
            # Every open stream keeps its connection's buffers: at granian's least HTTP/1 buffer a held stream
            # costs ~17 KiB, at its default (408 KiB) ~28 KiB, which caps the audience one process can hold.
            http1_settings=HTTP1Settings(max_buffer_size=settings.http1_buffer_bytes),
        ).serve()


@main.command()
def migrate() -> None:
    """Migrate the database to head."""
    with _database(migrate=True):
        click.echo(f"liveline: database at revision {schema.head_revision()}")


@main.group()
def token() -> None:
    """Make, list and revoke API tokens."""


@token.command("create")
@click.option("--name", required=True, help="Recorded as the actor of every event this token writes.")
@click.option("--role", required=True, type=click.Choice(tokens.ROLES))
@click.option("--expires-in", "expires_in", default=None, help="Lifetime such as 90d, 12h or 30m; none by default.")
def token_create(name: str, role: tokens.Role, expires_in: str | None) -> None:
    """Make a token; it is printed once, alone on stdout, and stored only as a hash."""
    expires_at = datetime.now(UTC) + _lifetime(expires_in) if expires_in else None
    with _database() as dsn:
        try:
            secret = _with_connection(dsn, lambda conn: tokens.create_token(conn, name, role, expires_at))
        except tokens.TokenNameTaken as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(secret)


@token.command("list")
def token_list() -> None:
    """List tokens (names and roles; the tokens themselves are not kept)."""
    with _database() as dsn:
        rows = _with_connection(dsn, tokens.list_tokens)
    now = datetime.now(UTC)
    click.echo("name\trole\tcreated\tstate\tlast used\texpires")
    for row in rows:
        if row.revoked_at:
            state = f"revoked {row.revoked_at.isoformat()}"
        elif row.expires_at and row.expires_at <= now:
            state = "expired"
        else:
            state = "active"
        used = row.last_used_at.isoformat() if row.last_used_at else "never"
        expires = row.expires_at.isoformat() if row.expires_at else "never"
        click.echo(f"{row.name}\t{row.role}\t{row.created_at.isoformat()}\t{state}\t{used}\t{expires}")


@token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke the active token called NAME."""
    with _database() as dsn:
        if not _with_connection(dsn, lambda conn: tokens.revoke_token(conn, name)):
            raise click.ClickException(f"no active token named {name!r}")
    click.echo(f"liveline: revoked {name}", err=True)


@main.command("verify")
@click.option("--coverage", "coverage_id", default=None, help="Verify one coverage's chain only.")
def verify_command(coverage_id: str | None) -> None:
    """Recompute every hash chain; prints a JSON report and exits non-zero at the first break."""
    with _database() as dsn:
        report = _with_connection(dsn, lambda conn: audit.verify(conn, coverage_id))
    click.echo(msgspec.json.format(msgspec.json.encode(report)).decode())
    if not report.ok:
        raise SystemExit(1)


@main.command("witness")
@click.argument("source")
@click.option("--state", required=True, type=click.Path(dir_okay=False), help="The witness's own JSON file.")
@click.option("--key", default=None, help="Verifier key to trust; default: the service's, pinned on first use.")
@click.option("--coverage", "coverages", multiple=True, help="Only these coverages (default: all, and all witnessed).")
@click.option(
    "--checkpoint",
    "kept",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A signed checkpoint kept elsewhere (a file), checked like one witnessed.",
)
def witness_command(
    source: str, state: str, key: str | None, coverages: tuple[str, ...], kept: tuple[str, ...]
) -> None:
    """Check that the transparency logs at SOURCE (a service URL, or an export file) extend every checkpoint this
    witness has seen: truncation, rewritten events and forks are reported by coverage and size, exit status 1.
    Against a service, the newest checkpoints are then remembered (only when nothing was found)."""
    path = Path(state)
    seen = witness.State.load(path)
    if not source.startswith(("http://", "https://")):
        with open(source, "rb") as lines:
            findings, compared = witness.check_export(lines, seen)
        for finding in findings:
            click.echo(f"liveline witness: {finding}", err=True)
        click.echo(f"liveline witness: {compared} witnessed logs compared with {source}", err=True)
        raise SystemExit(1 if findings else 0)
    try:
        checker = witness.ServiceWitness(source, seen, key)
        for file in kept:
            checker.adopt(Path(file).read_text())
        findings = checker.run(coverages)
    except (witness.Unreachable, LookupError, NoteError) as exc:
        raise click.ClickException(str(exc)) from exc
    if checker.pinned_now:
        click.echo(f"liveline witness: trusting {checker.verifier.text()} from now on", err=True)
    if checker.key_changed:
        click.echo(
            "liveline witness: the service now publishes another key; still checking with the pinned one", err=True
        )
    for finding in findings:
        click.echo(f"liveline witness: {finding}", err=True)
    if findings:
        raise SystemExit(1)
    seen.save(path)
    click.echo(f"liveline witness: {len(seen.logs)} logs consistent with every checkpoint witnessed", err=True)


@main.command("export")
@click.option("--coverage", "coverage_id", default=None, help="Export one coverage only.")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default="-", help="File (default stdout).")
def export_command(coverage_id: str | None, output: str) -> None:
    """Write the event log as canonical NDJSON (one event a line, keys sorted, hashes included)."""

    async def write(conn: Connection) -> int:
        count = 0
        with click.open_file(output, "wb") as out:
            async for line in audit.export_lines(conn, coverage_id):
                out.write(line)
                count += 1
        return count

    with _database() as dsn:
        count = _with_connection(dsn, write)
    click.echo(f"liveline: exported {count} events", err=True)


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def import_command(file: str) -> None:
    """Load an exported log into an empty store, checking every chain link, then build the read model."""
    with _database(as_owner=True) as dsn, open(file, "rb") as lines:
        try:
            count = _with_connection(dsn, lambda conn: audit.import_log(conn, lines))
        except audit.ImportRefused as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"liveline: imported {count} events", err=True)


@main.command()
@click.option("--check", is_flag=True, help="Rebuild into scratch tables and report differences; swap nothing.")
def rebuild(check: bool) -> None:
    """Rebuild the reader tables from the log beside the live ones, then swap them in; the service keeps serving."""
    console = Console(stderr=True)
    columns = (
        TextColumn("replaying the log"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} events/s"),
        TimeRemainingColumn(),
    )
    with _database(as_owner=True) as dsn:

        async def run() -> RebuildResult:
            reader, writer = await connect(dsn), await connect(dsn)
            started = time.monotonic()
            try:
                with Progress(*columns, console=console, transient=False) as bar:
                    task = bar.add_task("rebuild", total=None, rate="-")

                    def report(done: int, total: int) -> None:
                        rate = done / max(time.monotonic() - started, 1e-6)
                        bar.update(task, completed=done, total=total, rate=f"{rate:,.0f}")

                    return await rebuild_online(reader, writer, check=check, progress=report)
            finally:
                await reader.close()
                await writer.close()

        try:
            result = asyncio.run(run())
        except RebuildBusy as exc:
            raise click.ClickException(str(exc)) from exc
    summary = f"{result.replayed} events replayed, {result.caught_up} caught up, in {result.seconds:.1f}s"
    if not check:
        console.print(f"liveline: read model rebuilt and swapped in ({summary})")
        return
    for difference in result.differences:
        console.print(f"liveline: {difference}")
    if result.differences:
        raise SystemExit(f"liveline: {len(result.differences)} differences between the read model and the log")
    console.print(f"liveline: the read model matches the log ({summary})")


if __name__ == "__main__":
    sys.exit(main())
