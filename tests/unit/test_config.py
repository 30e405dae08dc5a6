"""Configuration from the environment: a value that does not read as its setting names the variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from service.config import BadConfiguration, Settings


def test_a_bad_value_names_its_variable() -> None:
    with pytest.raises(BadConfiguration, match="LIVELINE_POOL_MAX_SIZE"):
        Settings.from_env({"LIVELINE_POOL_MAX_SIZE": "ten"})
    assert Settings.from_env({"LIVELINE_POOL_MAX_SIZE": "12"}).pool_max_size == 12
    with pytest.raises(BadConfiguration, match="LIVELINE_HTTP1_BUFFER_BYTES"):  # below granian's least
        Settings.from_env({"LIVELINE_HTTP1_BUFFER_BYTES": "4096"})


def test_the_cli_refuses_it_with_a_message_and_no_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "migrate"],
        env={"PATH": "/usr/bin:/bin", "LIVELINE_POOL_MAX_SIZE": "ten"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "bad configuration" in done.stderr and "LIVELINE_POOL_MAX_SIZE" in done.stderr
    assert "Traceback" not in done.stderr
