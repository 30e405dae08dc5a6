"""The transparency log's signing key: from configuration, or from the data folder, made there on first start."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from urllib.parse import urlsplit

from service.config import Settings
from service.domain.note import Signer

KEY_FILE = "log-signing-key"


def log_name(settings: Settings) -> str:
    return settings.log_name or urlsplit(settings.public_url).netloc or "liveline"


def signer(settings: Settings) -> Signer:
    """The configured key, else the data folder's. A new key is written whole under a temporary name, then linked
    into place: workers starting at once all end up with the one key that got there first."""
    if settings.signing_key:
        return Signer.parse(settings.signing_key)
    folder = Path(settings.data_dir)
    path = folder / KEY_FILE
    if not path.exists():
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        draft = folder / f".{KEY_FILE}.{os.getpid()}"
        draft.write_text(Signer.generate(log_name(settings)).text() + "\n")
        draft.chmod(0o600)
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
        draft.unlink()
    return Signer.parse(path.read_text())
