"""The README's front-end code, run as written in headless Chromium from a page on another origin.

The section "For front-ends" holds three ```js blocks: loading the timeline, following it with `EventSource`,
and following it by polling. They are read from README.md at test time and run unchanged, except that the
example address of Liveline is replaced by the test server's. Two pages are served by a static server on
another port (another origin, so every read is a cross-origin request under the browser's normal CORS rules):
one runs load + stream, the other load + polling. A writer then publishes, edits, retracts and pins, and after
each step both pages must hold what the server's timeline says. A last test shows that the write API is not
open to an arbitrary origin: a page's POST is refused by the browser and changes nothing.

Chromium comes from Debian (`apt-get install chromium`) and is driven by Playwright through its own binary;
`playwright install` is never needed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import fresh_database
from tests.e2e.conftest import RunningServer, environment, start_server
from tests.support import Api, paragraph

try:
    from playwright.async_api import Browser, ConsoleMessage, Page, Request, async_playwright
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI"):
        raise
    pytest.skip("playwright is not installed (pip install -e '.[dev]')", allow_module_level=True)

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## For front-ends"
EXAMPLE_LIVELINE = "https://liveline.example.org"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
COVERAGE = "ukraine-kherson-withdrawal"
CMS_ORIGIN = "https://cms.example.org"  # the one origin allowed to write
CONVERGE_TIMEOUT = 10.0

# Defined inside the module, before the README's code, because `posts` and `pinned` are module-scoped there.
# `window.render` lets the test render the state as first loaded, before any change has called render().
RENDER = """\
function render() {
  window.liveline = {
    ids: [...posts.keys()],
    titles: Object.fromEntries([...posts.values()].map((p) => [p.id, p.title])),
    revisions: Object.fromEntries([...posts.values()].map((p) => [p.id, p.revision])),
    pinned,
  };
}
window.render = render;
"""
# After the polling block: reached only when its loop has returned.
LOOP_ENDED = "window.livelineLoopEnded = true;\n"


def readme_blocks(liveline: str) -> tuple[str, str, str]:
    """(load, stream, poll): the ```js blocks of the README's front-end section, pointed at `liveline`."""
    text = README.read_text(encoding="utf-8")
    start = text.find(f"\n{SECTION}")
    if start < 0:
        pytest.fail(f"README.md has no section {SECTION!r}")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end >= 0 else len(text)]
    blocks = re.findall(r"^```js\n(.*?)^```[ \t]*$", section, flags=re.MULTILINE | re.DOTALL)
    if len(blocks) != 3:
        pytest.fail(f"README.md {SECTION!r} should hold exactly three ```js blocks (load, stream, poll): {len(blocks)}")
    load, stream, poll = blocks
    if f'"{EXAMPLE_LIVELINE}"' not in load:
        pytest.fail(f"the README's load block no longer names Liveline as {EXAMPLE_LIVELINE!r}")
    return load.replace(EXAMPLE_LIVELINE, liveline), stream.replace(EXAMPLE_LIVELINE, liveline), poll


def html_page(title: str, module: str) -> str:
    if "</script" in module.lower():
        pytest.fail("the README's code cannot be inlined in a <script> element")
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8">'
        f'<title>{title}</title><link rel="icon" href="data:,"></head>\n'
        f'<body><script type="module">\n{module}</script></body></html>\n'
    )


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def static_site(folder: Path) -> Iterator[str]:
    """Serve `folder` on its own port of 127.0.0.1: another origin than the Liveline server."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietFiles, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, name="static-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def server(admin_dsn: str, template_database: str) -> Iterator[RunningServer]:
    """The e2e server, with two settings of its own. A poll interval of 1 s instead of 5: the README's loop sleeps
    that long after each answer before its next long poll, and every step of the writer waits for the polling page.
    Writes open to one named origin, whatever the environment says, and never to the static site's."""
    env = environment(
        DATABASE_URL=fresh_database(admin_dsn, template_database),
        LIVELINE_POLL_INTERVAL="1",
        LIVELINE_CORS_ORIGINS=CMS_ORIGIN,
    )
    running = start_server(env)
    yield running
    assert running.stop() == 0


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(folder, origin) of the static site the pages are served from."""
    with static_site(tmp_path) as origin:
        yield tmp_path, origin


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing; install it with: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(reason)
        print(reason)
        pytest.skip(reason)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


class Reader:
    """One page running the README's code: its console errors, page errors and requests to Liveline."""

    def __init__(self, name: str, page: Page, liveline: str) -> None:
        self.name = name
        self.page = page
        self.liveline = liveline
        self.errors: list[str] = []
        self.started: list[str] = []
        self.done: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        page.on("request", lambda request: self._record(self.started, request))
        page.on("requestfinished", lambda request: self._record(self.done, request))
        page.on("requestfailed", lambda request: self._record(self.done, request))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console error: {message.text}")

    def _record(self, into: list[str], request: Request) -> None:
        if request.url.startswith(self.liveline):
            into.append(request.url.removeprefix(self.liveline))

    def requests(self, path: str, into: list[str] | None = None) -> int:
        return sum(1 for url in (self.started if into is None else into) if path in url)

    def check(self) -> None:
        if self.errors:
            pytest.fail(f"{self.name} page: " + "\n".join(self.errors))

    async def wait_until(self, ready: Callable[[], Any], what: str, timeout: float = CONVERGE_TIMEOUT) -> None:
        """Poll `ready` (a function or a coroutine function) until true; fail on a page error or after `timeout`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not await _call(ready):
            self.check()
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"{self.name} page: no {what} within {timeout} s")
            await asyncio.sleep(0.05)
        self.check()

    async def state(self) -> dict[str, Any] | None:
        seen: dict[str, Any] | None = await self.page.evaluate("window.liveline")
        if seen is not None:
            seen["ids"] = sorted(seen["ids"])
        return seen


async def _call(ready: Callable[[], Any]) -> bool:
    result = ready()
    if asyncio.iscoroutine(result):
        result = await result
    return bool(result)


async def open_reader(browser: Browser, name: str, url: str, liveline: str, follows: str) -> Reader:
    """Load a page and render what its first timeline fetch gave, once the README's code follows `follows`."""
    context = await browser.new_context()
    reader = Reader(name, await context.new_page(), liveline)
    await reader.page.goto(url, wait_until="commit")  # the polling page's module never finishes
    # The load block has run once the stream is opened or the first long poll is sent.
    await reader.wait_until(lambda: reader.requests(follows), f"request to {follows}")
    await reader.page.evaluate("render()")
    return reader


async def server_view(api: Api, coverage_id: str) -> dict[str, Any]:
    """What a front-end should hold, from the server's own timeline (one page: every post)."""
    response = await api.timeline(coverage_id)
    assert response.status_code == 200, response.text
    timeline = response.json()
    assert timeline["next"] is None, "the test keeps every post on the first page"
    posts = timeline["posts"]
    return {
        "ids": sorted(p["id"] for p in posts),
        "titles": {p["id"]: p["title"] for p in posts},
        "revisions": {p["id"]: p["revision"] for p in posts},
        "pinned": timeline["coverage"]["pinned_post_id"],
    }


async def converge(readers: list[Reader], api: Api, coverage_id: str, step: str) -> dict[str, Any]:
    """Wait until every page holds the server's timeline; return it."""
    expected = await server_view(api, coverage_id)
    for reader in readers:
        deadline = asyncio.get_running_loop().time() + CONVERGE_TIMEOUT
        while (held := await reader.state()) != expected:
            reader.check()
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(
                    f"{reader.name} page: no convergence after {step} within {CONVERGE_TIMEOUT} s"
                    f"\n  page holds: {json.dumps(held, sort_keys=True)}"
                    f"\n  server has: {json.dumps(expected, sort_keys=True)}"
                )
            await asyncio.sleep(0.05)
        reader.check()
    return expected


@pytest.fixture
async def api(server: RunningServer, editor_token: str) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        yield Api(client, editor_token, server.env["DATABASE_URL"])


async def test_readme_code_follows_a_writer_from_another_origin(
    browser: Browser, site: tuple[Path, str], server: RunningServer, api: Api
) -> None:
    folder, origin = site
    assert origin != server.base_url
    load, stream, poll = readme_blocks(server.base_url)
    (folder / "stream.html").write_text(html_page("stream", RENDER + load + stream), encoding="utf-8")
    (folder / "poll.html").write_text(html_page("poll", RENDER + load + poll + LOOP_ENDED), encoding="utf-8")

    opened = await api.open(COVERAGE, title="Russia withdraws from Kherson")
    assert opened.status_code == 201, opened.text

    async def publish(title: str) -> str:
        published = await api.publish(COVERAGE, title=title, body=paragraph(title))
        assert published.status_code == 201, published.text
        post_id: str = published.json()["id"]
        return post_id

    order = await publish("Russia orders troops to leave Kherson")

    streaming = await open_reader(browser, "stream", f"{origin}/stream.html", server.base_url, "/stream?")
    polling = await open_reader(browser, "poll", f"{origin}/poll.html", server.base_url, "/changes?")
    readers = [streaming, polling]
    first = await converge(readers, api, COVERAGE, "the first load")
    assert first["ids"] == [order] and first["pinned"] is None

    bridge = await publish("Antonivskiy bridge destroyed")
    view = await converge(readers, api, COVERAGE, "a publish")
    assert view["ids"] == sorted([order, bridge])

    square = await publish("Crowds in Kherson's main square")
    doubt = await publish("Kyiv doubts the withdrawal")
    view = await converge(readers, api, COVERAGE, "two publishes in a row")
    assert view["ids"] == sorted([order, bridge, square, doubt])

    edited = await api.edit(order, COVERAGE, title="Russia orders its troops out of Kherson")
    assert edited.status_code == 200, edited.text
    view = await converge(readers, api, COVERAGE, "an edit")
    assert view["titles"][order] == "Russia orders its troops out of Kherson" and view["revisions"][order] == 2

    retracted = await api.retract(doubt, "the quote was misattributed", COVERAGE)
    assert retracted.status_code == 200, retracted.text
    view = await converge(readers, api, COVERAGE, "a retraction")
    assert doubt not in view["ids"]

    pinned = await api.pin(square, COVERAGE)
    assert pinned.status_code == 200, pinned.text
    view = await converge(readers, api, COVERAGE, "a pin")
    assert view["pinned"] == square

    moved = await api.pin(bridge, COVERAGE)
    assert moved.status_code == 200, moved.text
    view = await converge(readers, api, COVERAGE, "the pin moving")
    assert view["pinned"] == bridge

    ended = await api.client.post(f"/v1/coverages/{COVERAGE}/end", headers=api.auth())
    assert ended.status_code == 200, ended.text
    await polling.wait_until(lambda: polling.page.evaluate("window.livelineLoopEnded === true"), "end of the loop")
    assert polling.requests("/changes?") == polling.requests("/changes?", polling.done), "a poll is still waiting"
    await streaming.wait_until(lambda: streaming.requests("/stream?", streaming.done), "end of the stream")
    await asyncio.sleep(2.5)  # longer than the stream's `retry: 2000`: time enough to see a reconnect
    assert streaming.requests("/stream?") == 1, "EventSource reconnected after the coverage ended"
    await converge(readers, api, COVERAGE, "the end")


async def test_a_page_on_another_origin_cannot_write(
    browser: Browser, site: tuple[Path, str], server: RunningServer, editor_token: str
) -> None:
    folder, origin = site
    (folder / "cms.html").write_text(html_page("cms", ""), encoding="utf-8")
    context = await browser.new_context()
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    await page.goto(f"{origin}/cms.html")

    attempt = """async ([liveline, token, body]) => {
      try {
        const init = { method: body ? "POST" : "GET" };
        if (body) {
          init.headers = { "Content-Type": "application/json", Authorization: `Bearer ${token}` };
          init.body = JSON.stringify(body);
        }
        const response = await fetch(`${liveline}/v1/coverages`, init);
        return `answered ${response.status}`;
      } catch (error) {
        return `${error.name}: ${error.message}`;
      }
    }"""
    # The same page reads freely: the refusal below is about writing, not about reaching the server.
    assert await page.evaluate(attempt, [server.base_url, editor_token, None]) == "answered 200"
    body = {"id": "cross-origin-attempt", "title": "Opened from a page on another origin"}
    assert await page.evaluate(attempt, [server.base_url, editor_token, body]) == "TypeError: Failed to fetch"
    assert any("CORS policy" in line for line in console), console
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        assert (await client.get("/v1/coverages/cross-origin-attempt")).status_code == 404
