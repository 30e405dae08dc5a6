"""Print the OpenAPI document the app generates: `python -m service.openapi > openapi/openapi.json`."""

from __future__ import annotations

import json
import sys

from service.app import create_app
from service.config import Settings
from service.domain.note import Signer


def document() -> str:
    # A throwaway signing key: making the document must not make a key in the working folder's data dir.
    app = create_app(Settings(database_url="postgresql://unused", signing_key=Signer.generate("openapi").text()))
    return json.dumps(app.openapi_schema.to_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(document())
