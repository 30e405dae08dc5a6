"""The in-memory side of cheap polls: versions only move forward, and rendered pages of older versions go."""

from __future__ import annotations

from service.api.live import CoverageVersions, Rendered, RenderedPages


def test_versions_move_forward_and_are_trusted_only_while_listening() -> None:
    versions = CoverageVersions()
    versions.observe("k", 3)
    assert versions.known("k") is None, "not listening yet: nothing is trusted"
    versions.connected(True, epoch=7)
    versions.observe("k", 3)
    versions.observe("k", 2)
    assert versions.known("k") == 3
    stale_generation = versions.generation
    versions.connected(True, epoch=8)
    versions.observe("k", 5, stale_generation)
    assert versions.known("k") is None, "a read that began before the reconnect is not trusted"
    assert versions.epoch == 8


def test_pages_are_bounded_and_dropped_when_their_coverage_moves_on() -> None:
    pages = RenderedPages(capacity=3)
    versions = CoverageVersions(on_advance=pages.drop_older)
    versions.connected(True, epoch=1)
    for version in (1, 2):
        pages.put(("k", version, "timeline"), Rendered(b"x", f'"{version}"'))
    pages.put(("other", 1, "timeline"), Rendered(b"y", '"o"'))
    versions.observe("k", 2)
    assert pages.get(("k", 1, "timeline")) is None and pages.get(("k", 2, "timeline")) is not None
    for n in range(5):
        pages.put(("other", 2 + n, "timeline"), Rendered(b"z", '"z"'))
    assert len(pages) == 3
