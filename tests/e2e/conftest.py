"""Real `liveline` processes: a server started as an operator would, on its own database."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import fresh_database
from tests.support import TEST_SIGNING_KEY

LIVELINE = [sys.executable, "-m", "service.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def liveline(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LIVELINE, *args], env=env, capture_output=True, text=True, timeout=timeout)


METRICS_TOKEN = "e2e-scraper"
METRICS = {"Authorization": f"Bearer {METRICS_TOKEN}"}
"""What the tests' Prometheus scraper sends: every server they start is given this metrics token."""


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "LIVELINE_DATA_DIR"}}
    env["LIVELINE_METRICS_TOKEN"] = METRICS_TOKEN
    # Many writers on one token, far faster than a desk: quotas are tested on their own (test_quotas.py).
    env["LIVELINE_WRITE_QUOTA_PER_MINUTE"] = env["LIVELINE_WRITE_QUOTA_BURST"] = str(10**9)
    env["LIVELINE_MAX_WRITES_IN_FLIGHT"] = "1000"  # some tests seed with hundreds of concurrent writes
    env["LIVELINE_SIGNING_KEY"] = TEST_SIGNING_KEY  # never a key made in the working folder's data dir
    env.update(extra)
    return env


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    base_url: str
    env: dict[str, str]
    log: Path
    """The server's stderr (JSON log lines), in a file so a busy server never blocks on a full pipe."""

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=30)


def start_server(env: dict[str, str], *extra: str, ready_timeout: float = 30) -> RunningServer:
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="liveline-serve-", suffix=".log", dir="/tmp")[1])
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [*LIVELINE, "serve", "--host", "127.0.0.1", "--port", str(port), *extra],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"liveline serve exited {process.returncode}: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base_url}/ready", timeout=1).status_code == 200:
                return RunningServer(process, base_url, env, log)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("liveline serve did not become ready")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data folder for the embedded PostgreSQL, in /tmp (never under a home folder: root opens its parents)."""
    folder = Path(tempfile.mkdtemp(prefix="liveline-data-", dir="/tmp"))
    yield folder
    pid_file = folder / "postgres" / "postmaster.pid"
    if pid_file.exists():  # never leak a server, whatever the test did
        with contextlib.suppress(psutil.NoSuchProcess, ValueError):
            psutil.Process(int(pid_file.read_text().split()[0])).kill()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def server(admin_dsn: str, template_database: str) -> Iterator[RunningServer]:
    env = environment(DATABASE_URL=fresh_database(admin_dsn, template_database))
    running = start_server(env)
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def editor_token(server: RunningServer) -> str:
    made = liveline("token", "create", "--name", "e2e-cms", "--role", "editor", env=server.env)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()
