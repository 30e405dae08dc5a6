"""A data folder made by an older PostgreSQL major (earlier Liveline's pgserver, PostgreSQL 16) is refused at start
with directions, never opened, crashed on or re-initialised; following the directions carries the record over."""

from __future__ import annotations

import hashlib
import importlib.util
import signal
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import environment, liveline, start_server

if importlib.util.find_spec("pgserver") is None:
    pytest.skip("pgserver (PostgreSQL 16, as earlier Liveline used) has no wheel for this Python", allow_module_level=True)


def fingerprint(folder: Path) -> str:
    """Names, sizes and contents of every file: any change a server start would make shows here."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(f"{path.relative_to(folder)}:{path.stat().st_size}:".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def test_an_old_major_data_folder_is_refused_with_directions_that_work(data_dir: Path) -> None:
    workspace = data_dir  # the folder a newcomer runs in; Liveline keeps its data under .liveline
    home = workspace / ".liveline"
    old = environment(LIVELINE_DATA_DIR=str(home), LIVELINE_EMBEDDED_ENGINE="pgserver")
    token = liveline("token", "create", "--name", "cms", "--role", "editor", env=old).stdout.strip()
    server = start_server(old)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        httpx.post(f"{server.base_url}/v1/coverages", json={"id": "kept", "title": "Kept"}, headers=headers).raise_for_status()
        for text in ("first", "second"):
            body = {"body": [{"type": "paragraph", "text": text}]}
            httpx.post(f"{server.base_url}/v1/coverages/kept/posts", json=body, headers=headers).raise_for_status()
        before = httpx.get(f"{server.base_url}/v1/coverages/kept/timeline").json()
    finally:
        assert server.stop(signal.SIGTERM) == 0
    pgdata = home / "postgres"
    assert (pgdata / "PG_VERSION").read_text().strip() == "16"
    untouched = fingerprint(pgdata)

    new = environment(LIVELINE_DATA_DIR=str(home))
    for command in (["serve", "--port", "1"], ["token", "list"], ["migrate"]):
        refused = liveline(*command, env=new)
        assert refused.returncode != 0, command
        assert "made by PostgreSQL 16" in refused.stderr and "PostgreSQL 18" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr, refused.stderr
        assert "LIVELINE_EMBEDDED_ENGINE=pgserver liveline export" in refused.stderr
    assert fingerprint(pgdata) == untouched, "a refused start changes nothing in the old folder"

    exported = workspace / "liveline.ndjson"
    dumped = liveline("export", "--output", str(exported), env=old)
    assert dumped.returncode == 0, dumped.stderr
    home.rename(workspace / ".liveline-pg16")
    loaded = liveline("import", str(exported), env=new)
    assert loaded.returncode == 0, loaded.stderr
    assert (pgdata / "PG_VERSION").read_text().strip() == "18"
    assert liveline("verify", env=new).returncode == 0
    server = start_server(new)
    try:
        after = httpx.get(f"{server.base_url}/v1/coverages/kept/timeline").json()
    finally:
        assert server.stop(signal.SIGTERM) == 0
    assert after["posts"] == before["posts"] and after["coverage"] == before["coverage"]
