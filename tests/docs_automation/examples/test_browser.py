"""The built docs site in Debian's Chromium: pages render cleanly, search works, the live
console talks to a real reference server, and the health dashboard charts one."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from docs_automation.examples.browser import launch
from tests.docs.sitebuild import BuiltSite, serve_site
from tests.procs import RedisProcess, ServerProcess
from tests.wsclient import Client

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

#: Longest a page element may take to appear, in milliseconds.
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def site_url(built_site: BuiltSite) -> Iterator[tuple[str, Path]]:
    dest = built_site.check()
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


#: The issue's floors for the health dashboard: all its assets, and its first charts.
DASHBOARD_MAX_BYTES = 300_000
DASHBOARD_FIRST_CHARTS_MS = 1000
#: The broker panel must turn red within this long after Redis stops, in milliseconds.
BROKER_DOWN_MS = 5000


def _now(page: Page, chart: str) -> str:
    """What a dashboard panel shows as its current values (`label value · ...`)."""
    return page.locator(f"[data-chart={chart}] .hive-now").inner_text()


def _reading(page: Page, chart: str, label: str) -> float | None:
    found = re.search(re.escape(label) + r" ([0-9.]+)", _now(page, chart))
    return float(found[1]) if found else None


def _busy_client(url: str, stop: threading.Event) -> None:
    """A dashboard client: reads every update and pings every 0.2 s until `stop`."""
    with Client(url) as client:
        while not stop.is_set():
            client.send({"type": "ping"})
            deadline = time.monotonic() + 0.2
            while time.monotonic() < deadline:
                try:
                    client.ws.recv(timeout=max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    break


def test_health_dashboard_weighs_little_paints_fast_and_its_lines_move(
    site_url: tuple[str, Path], page: Page, server_factory: Callable[..., ServerProcess]
) -> None:
    base, _ = site_url
    server = server_factory(
        {
            "WS_DEMO": "true",
            "WS_DEMO_INTERVAL_SECONDS": "0.1",
            "WS_CORS_ALLOWED_ORIGINS": base.rstrip("/"),
        }
    )
    errors, remote = _watch(page, base)
    assets: dict[str, int] = {}
    page.on(
        "response",
        lambda r: assets.setdefault(r.url, len(r.body())) if r.url.startswith(base) else None,
    )
    # A link from the console carries the address and starts watching at once.
    page.goto(f"{base}dashboard/?url={server.ws}", wait_until="load")
    page.wait_for_function(
        "performance.getEntriesByName('hive-dashboard-first-charts').length > 0", timeout=WAIT_MS
    )
    first_ms = page.evaluate(
        "performance.getEntriesByName('hive-dashboard-first-charts')[0].startTime"
    )
    weight = sum(assets.values())
    print(f"\ndashboard: {weight} bytes in {len(assets)} files, first charts at {first_ms:.0f} ms")
    assert weight < DASHBOARD_MAX_BYTES, assets
    assert first_ms < DASHBOARD_FIRST_CHARTS_MS
    expect(page.locator(".hive-panel canvas")).to_have_count(6, timeout=WAIT_MS)
    expect(page.locator("#hive-broker")).to_have_attribute("data-state", "up", timeout=WAIT_MS)
    assert _reading(page, "connections", "open") == 0

    stop = threading.Event()
    clients = [
        threading.Thread(
            target=_busy_client, args=(server.ws + "?subscriptions=agents,tasks", stop)
        )
        for _ in range(2)
    ]
    for thread in clients:
        thread.start()
    try:
        expect(page.locator("[data-chart=connections] .hive-now")).to_have_text(
            "open 2", timeout=WAIT_MS
        )
        page.wait_for_function(
            "document.querySelector('[data-chart=latency]').dataset.points >= 4", timeout=WAIT_MS
        )
        expect(page.locator("#hive-subscribers")).to_contain_text("agents2", timeout=WAIT_MS)
        deliveries = _reading(page, "deliveries", "frames sent/s")
        inbound = _reading(page, "inbound", "frames received/s")
        p50 = _reading(page, "latency", "P50")
        p95 = _reading(page, "latency", "P95")
        subscribers = _reading(page, "subscribers", "agents")
    finally:
        stop.set()
        for thread in clients:
            thread.join(10)
    print(f"deliveries {deliveries}/s, inbound {inbound}/s, latency P50 {p50} ms, P95 {p95} ms")
    assert deliveries and deliveries > 5, _now(page, "deliveries")
    assert inbound and inbound > 2, _now(page, "inbound")
    assert p50 is not None and p95 is not None and 0 < p50 <= p95 < 1000
    assert subscribers == 2
    assert not errors, errors
    assert not remote, remote


def test_health_dashboard_broker_panel_turns_red_while_redis_is_down_and_recovers(
    site_url: tuple[str, Path],
    page: Page,
    redis_server: RedisProcess,
    server_factory: Callable[..., ServerProcess],
) -> None:
    base, _ = site_url
    server = server_factory(
        {
            "REDIS_URL": redis_server.url,
            "WS_REDIS_TIMEOUT_SECONDS": "0.5",
            "WS_REDIS_WAIT_TIMEOUT_MS": "300",
            "WS_REDIS_BACKOFF_CAP_SECONDS": "1",
            "WS_CORS_ALLOWED_ORIGINS": base.rstrip("/"),
        }
    )
    page.goto(f"{base}dashboard/", wait_until="load")
    # The address form: typed and submitted as a reader does.
    page.locator("#hive-url").fill(server.ws)
    page.locator("#hive-watch").click()
    broker = page.locator("#hive-broker")
    expect(broker).to_have_attribute("data-state", "up", timeout=WAIT_MS)

    redis_server.kill()
    stopped = time.monotonic()
    expect(broker).to_have_attribute("data-state", "down", timeout=BROKER_DOWN_MS)
    red_after = time.monotonic() - stopped
    colour = broker.evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(198, 40, 40)"
    expect(broker).to_contain_text("down since")

    redis_server.restart()
    restarted = time.monotonic()
    expect(broker).to_have_attribute("data-state", "up", timeout=WAIT_MS)
    print(
        f"\nbroker panel red {red_after:.1f} s after Redis stopped, "
        f"green {time.monotonic() - restarted:.1f} s after it restarted"
    )
    assert broker.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(46, 125, 50)"


def test_health_dashboard_computes_quantiles_and_reads_labels_as_prometheus_does(
    site_url: tuple[str, Path], page: Page
) -> None:
    base, _ = site_url
    page.goto(f"{base}dashboard/", wait_until="load")
    page.wait_for_function("window.HiveDashboard !== undefined", timeout=WAIT_MS)
    # The buckets of rules.test.yml's HiveSlowDelivery case, where promtool's
    # histogram_quantile(0.95, ...) is 625 ms: 90 of 100 under 10 ms, 10 under 1 s.
    buckets = "[[0.01, 90], [0.25, 90], [1, 100], [Infinity, 100]]"
    p95 = page.evaluate(f"HiveDashboard.quantile(0.95, {buckets})")
    p50 = page.evaluate(f"HiveDashboard.quantile(0.5, {buckets})")
    assert p95 == pytest.approx(0.625)
    assert p50 == pytest.approx(0.01 * 50 / 90)
    # Above the highest finite bucket, Prometheus answers that bucket's bound.
    assert page.evaluate("HiveDashboard.quantile(0.5, [[0.5, 0], [Infinity, 4]])") == 0.5
    assert page.evaluate("HiveDashboard.quantile(0.5, [[0.5, 0], [Infinity, 0]])") is None
    # A counter that went down was reset: the new value is the increase.
    assert page.evaluate("HiveDashboard.rate(3, 10, 2)") == 1.5
    samples = page.evaluate(
        """HiveDashboard.parse('# HELP x y\\nx_total{a="q\\\\"uote",le="+Inf"} 7.0\\n')"""
    )
    assert samples == [{"name": "x_total", "labels": {"a": 'q"uote', "le": "+Inf"}, "value": 7}]


def test_console_and_dashboard_share_the_server_address(
    site_url: tuple[str, Path], page: Page, server_factory: Callable[..., ServerProcess]
) -> None:
    base, _ = site_url
    server = server_factory({"WS_CORS_ALLOWED_ORIGINS": base.rstrip("/")})
    errors, _ = _watch(page, base)
    page.goto(f"{base}console/", wait_until="load")
    page.locator("#hive-url").fill(server.ws)
    page.locator("#hive-connect").click()
    expect(page.locator("#hive-status")).to_have_text("connected", timeout=WAIT_MS)
    # The console's link carries the address, and the dashboard starts watching it.
    page.locator("#hive-dashboard-link").click()
    page.wait_for_url(re.compile(r"/dashboard/\?url="), timeout=WAIT_MS)
    expect(page.locator("#hive-url")).to_have_value(server.ws)
    expect(page.locator("#hive-broker")).to_have_attribute("data-state", "up", timeout=WAIT_MS)
    # Opened again without `?url=`, both pages remember the last address used.
    page.goto(f"{base}dashboard/", wait_until="load")
    expect(page.locator("#hive-url")).to_have_value(server.ws)
    expect(page.locator("#hive-status")).to_have_text("not watching")
    page.goto(f"{base}console/", wait_until="load")
    expect(page.locator("#hive-url")).to_have_value(server.ws)
    assert not errors, errors
