"""The built docs site in Debian's Chromium: pages render cleanly, search works, and the
live console talks to a real reference server."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from docs_automation.examples.browser import launch
from tests.docs.sitebuild import build_site, serve_site
from tests.procs import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

#: Longest a page element may take to appear, in milliseconds.
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def site_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    dest = tmp_path_factory.mktemp("browser-site")
    built = build_site(dest)
    assert built.returncode == 0, built.stderr[-4000:]
    with serve_site(dest) as base:
        yield base, dest


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


def _watch(page: Page, base: str) -> tuple[list[str], list[str]]:
    """Collect console errors, page errors and requests to hosts other than ours."""
    errors: list[str] = []
    remote: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def request(r: Any) -> None:
        host = urlparse(r.url).hostname
        if r.url.startswith(("http", "ws")) and host not in ("127.0.0.1", urlparse(base).hostname):
            remote.append(r.url)

    page.on("request", request)
    return errors, remote


def test_every_page_renders_without_console_errors(site_url: tuple[str, Path], page: Page) -> None:
    base, root = site_url
    errors, remote = _watch(page, base)
    pages = sorted(
        p.relative_to(root).as_posix() for p in root.rglob("index.html") if "assets" not in p.parts
    )
    assert len(pages) > 15
    for rel in pages:
        page.goto(base + rel, wait_until="load")
        expect(page.locator("article h1").first).to_be_visible(timeout=WAIT_MS)
        # Material swaps each `pre.mermaid` for a `div` holding the SVG in a closed shadow
        # root, so "rendered" is: no `pre` left, and every diagram has a height.
        if page.locator(".mermaid").count():
            expect(page.locator("pre.mermaid")).to_have_count(0, timeout=WAIT_MS)
            heights = page.eval_on_selector_all(
                "div.mermaid", "els => els.map(e => e.getBoundingClientRect().height)"
            )
            assert heights and min(heights) > 20, (rel, heights)
    assert not errors, errors
    assert not remote, f"pages fetched from other hosts: {remote}"


def test_search_finds_rate_limit(site_url: tuple[str, Path], page: Page) -> None:
    base, _ = site_url
    page.goto(base, wait_until="load")
    query = page.locator("input[data-md-component='search-query']")
    query.click()
    # Material searches on key events, which fill() does not send: type like a reader.
    query.press_sequentially("rate limit", delay=30)
    results = page.locator(".md-search-result__item")
    expect(results.first).to_be_visible(timeout=WAIT_MS)
    assert re.search("rate limit", results.first.inner_text(), re.I)


def test_live_console_connects_subscribes_and_shows_updates(
    site_url: tuple[str, Path], page: Page, server_factory: Callable[..., ServerProcess]
) -> None:
    base, _ = site_url
    origin = base.rstrip("/")
    server = server_factory(
        {"WS_DEMO": "true", "WS_DEMO_INTERVAL_SECONDS": "0.1", "WS_CORS_ALLOWED_ORIGINS": origin}
    )
    errors, _ = _watch(page, base)
    page.goto(f"{base}console/", wait_until="load")
    page.locator("#hive-url").fill(server.ws)
    page.locator("#hive-connect").click()
    expect(page.locator("#hive-status")).to_have_text("connected", timeout=WAIT_MS)
    frames = page.locator("#hive-frames li")
    expect(frames.filter(has_text="connection_established")).to_have_count(1, timeout=WAIT_MS)
    expect(frames.filter(has_text="agent_update").first).to_be_visible(timeout=WAIT_MS)
    limits = page.locator("#hive-limits")
    expect(limits).to_contain_text("rate_limit_tokens_per_second", timeout=WAIT_MS)
    expect(limits).to_contain_text("20", timeout=WAIT_MS)

    page.locator("#hive-sub-alerts").check()
    updated = frames.filter(has_text="subscription_updated")
    expect(updated.first).to_contain_text('"alerts"', timeout=WAIT_MS)
    page.locator("#hive-sub-agents").uncheck()
    expect(updated).to_have_count(2, timeout=WAIT_MS)
    assert '"agents"' not in updated.first.inner_text()

    page.locator("#hive-disconnect").click()
    expect(page.locator("#hive-status")).to_contain_text("closed (code 1000", timeout=WAIT_MS)
    assert not errors, errors
