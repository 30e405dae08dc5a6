"""SPEC §9: the Kherson live page played through the HTTP API, checked against both renderings."""

from __future__ import annotations

from tests.support import Api, play_kherson


async def test_kherson_page_renders_both_versions_with_revisions_and_history(api: Api) -> None:
    await play_kherson(api)
