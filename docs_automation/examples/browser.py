"""Debian's Chromium driven by Playwright: how we launch it, and mermaid checked inside it.

`playwright install` downloads a browser build, which cannot be fetched here, so every
browser check uses the system's `/usr/bin/chromium` (installed by `scripts/bootstrap` when
`HIVE_NEED_BROWSER=1`). A missing browser is an error that says how to install it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import BlockError

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "MermaidChecker", "launch"]

CHROMIUM = "/usr/bin/chromium"
"""Debian's Chromium, the browser every check drives (Playwright never downloads one)."""
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking")
"""Headless flags: no sandbox (containers run as root), no GPU, and no calls home."""


def launch(playwright: Any) -> Any:
    """Launch headless Chromium with our flags from a started `sync_playwright()`.

    Raises:
        BlockError: `/usr/bin/chromium` is not installed; the message says how to install it.
    """
    if not Path(CHROMIUM).exists():
        raise BlockError(f"{CHROMIUM} is missing; run HIVE_NEED_BROWSER=1 scripts/bootstrap")
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS)
    )


class MermaidChecker:
    """Parses mermaid diagrams with the site's own copy of mermaid, in headless Chromium.

    Playwright's synchronous API runs an event loop in the thread that starts it, which
    would break every `asyncio.run` later in a test process; so it lives on a thread of its
    own, and every call is handed to that thread. Call `close` when done.

    Args:
        root: the repository root (mermaid comes from `node_modules/mermaid/dist`).

    Raises:
        BlockError: mermaid is not installed (`scripts/bootstrap`) or Chromium is missing.
    """

    def __init__(self, root: Path) -> None:
        script = root / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
        if not script.is_file():
            raise BlockError(f"{script} is missing; run scripts/bootstrap")
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mermaid")
        try:
            self._thread.submit(self._start, script).result()
        except BaseException:
            self._thread.shutdown()
            raise

    def _start(self, script: Path) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        try:
            self._browser = launch(self._playwright)
            self._page = self._browser.new_page()
            self._page.add_script_tag(path=str(script))
        except BaseException:
            self._playwright.stop()
            raise

    def parse(self, text: str) -> str:
        """The diagram's type when mermaid parses `text`.

        Raises:
            BlockError: mermaid refuses the diagram (its message says where).
        """
        return self._thread.submit(self._parse, text).result()

    def _parse(self, text: str) -> str:
        result = self._page.evaluate(
            """async (text) => {
                try { return {ok: (await mermaid.parse(text)).diagramType}; }
                catch (e) { return {error: String(e && e.message || e)}; }
            }""",
            text,
        )
        if "error" in result:
            raise BlockError(f"mermaid cannot parse the diagram: {result['error']}")
        return str(result["ok"])

    def close(self) -> None:
        """Close the browser, stop Playwright and its thread."""
        try:
            self._thread.submit(self._stop).result()
        finally:
            self._thread.shutdown()

    def _stop(self) -> None:
        try:
            self._browser.close()
        finally:
            self._playwright.stop()
