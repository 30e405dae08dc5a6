"""Print the OpenAPI document the app generates: `python -m service.openapi > openapi/openapi.json`."""

from __future__ import annotations

import json
import sys

from service.app import create_app
from service.config import Settings


def document() -> str:
    app = create_app(Settings(database_url="postgresql://unused"))
    return json.dumps(app.openapi_schema.to_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(document())
