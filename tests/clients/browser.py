"""The client package in Debian's Chromium: its ESM bundle served beside a small page that
records what each `HiveClient` delivers, and a publisher that remembers every acknowledged
publish. Shared by the browser and chaos tests of `clients/typescript/`.

The page's recorder is written here, in plain JavaScript, against the events the client
emits; the checks in Python (lost, duplicated, gaps) share nothing with the client's own
seq bookkeeping.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.docs.sitebuild import serve_site
from tests.procs import ROOT

__all__ = ["PAGE", "Publisher", "Tally", "bundle", "served_page", "tally"]

PACKAGE = ROOT / "clients" / "typescript"

# The recorder: one entry per client, filled from the client's events only.
PAGE = """<!doctype html>
<meta charset="utf-8">
<title>hive client</title>
<script type="module">
import { HiveClient } from "./client.js";
window.records = [];
window.clients = [];
window.makeClients = (count, options, snapshot) => {
  for (let i = 0; i < count; i += 1) {
    const urls = options.urls;
    const record = { received: {}, snapshots: [], opens: [], closes: [], resyncs: 0, gaps: [],
                     problems: [], sockets: 0 };
    const Counting = class extends WebSocket {
      constructor(url) { super(url); record.sockets += 1; }
    };
    const client = new HiveClient({
      ...(options.client ?? {}),
      WebSocket: Counting,
      // Attempt n goes to the next URL; `spread` starts client i at the i-th.
      url: (n) => urls[((options.spread ? i : 0) + n) % urls.length],
    });
    client.on("update", (u) => (record.received[u.subscription] ??= []).push(u.seq));
    client.on("snapshot", (s) => {
      const before = {};
      for (const name of Object.keys(s.positions)) {
        const got = record.received[name] ?? [];
        before[name] = got.length ? got[got.length - 1] : null;
      }
      record.snapshots.push({ positions: s.positions, before, data: s.data, at: Date.now() });
    });
    client.on("open", () => record.opens.push(Date.now()));
    client.on("close", (c) =>
      record.closes.push({ code: c.code, reconnect: c.reconnect, at: Date.now() }));
    client.on("resync_required", () => (record.resyncs += 1));
    client.on("gap", (g) => record.gaps.push(g));
    client.on("problem", (e) => record.problems.push(e.message));
    client.start();
    // Rejected when the test stops the client before it came: the records tell the story.
    if (snapshot) client.snapshot(snapshot.dataType, snapshot.subscriptions).catch(() => undefined);
    window.records.push(record);
    window.clients.push(client);
  }
};
window.ready = true;
</script>
"""


def bundle(dest: Path) -> Path:
    """Build the package (tsc), bundle it as one ES module into `dest`, write the page."""
    subprocess.run(
        [str(ROOT / "node_modules" / ".bin" / "tsc"), "-p", "."],
        cwd=PACKAGE,
        check=True,
        timeout=120,
    )
    subprocess.run(
        [
            str(ROOT / "node_modules" / ".bin" / "esbuild"),
            "dist/index.js",
            "--bundle",
            "--format=esm",
            f"--outfile={dest / 'client.js'}",
        ],
        cwd=PACKAGE,
        check=True,
        timeout=60,
        capture_output=True,
    )
    (dest / "index.html").write_text(PAGE, encoding="utf-8")
    return dest


@contextmanager
def served_page(tmp: Path) -> Iterator[str]:
    """Serve the bundle and page from `tmp`; yield the page's URL."""
    with serve_site(bundle(tmp)) as base:
        yield base + "index.html"


@dataclass
class Publisher:
    """Publishes `{"agent_id", "n"}` on `subscription` at `rate` per second from a thread,
    to the first of `urls` (HTTP bases) that answers; remembers every acknowledged seq.

    A publish is acknowledged when the server answered 200 with its `seq`; refused and
    failed publishes are counted apart and are not expected anywhere.
    """

    urls: Sequence[str]
    subscription: str = "agents"
    rate: float = 50.0
    agents: int = 5
    acked: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    failed: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def publish_one(self, n: int) -> None:
        data = {"agent_id": f"agent-{n % self.agents}", "status": "busy", "n": n}
        body = json.dumps(data).encode()
        for i in range(len(self.urls)):
            base = self.urls[(n + i) % len(self.urls)]
            request = urllib.request.Request(
                f"{base}/api/dashboard/websocket/broadcast?subscription={self.subscription}",
                data=body,
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    self.acked.append((int(json.load(response)["seq"]), data))
                    return
            except (OSError, urllib.error.URLError, ValueError, KeyError):
                continue
        self.failed += 1

    def _run(self) -> None:
        n = 0
        interval = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.publish_one(n)
            n += 1
            next_at += interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> Publisher:
        self._thread = threading.Thread(target=self._run, daemon=True, name="publisher")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    @property
    def seqs(self) -> list[int]:
        return [seq for seq, _ in self.acked]


@dataclass
class Tally:
    """One client's account of one subscription against the acknowledged publishes."""

    received: int
    duplicated: int
    lost: list[int]
    out_of_order: int
    snapshots: int


def tally(record: dict[str, Any], subscription: str, acked: Sequence[int]) -> Tally:
    """Count what `record` (one client's page record) lost and repeated of `acked`.

    Lost: an acknowledged seq the client neither received nor covered by a snapshot. A
    snapshot at position P taken when the client's last received seq was B covers the seqs
    in (B, P]; the first snapshot (B null) covers everything up to P. A client without a
    snapshot is expected to have every seq of `acked`: pass only those published after it
    subscribed.
    """
    got: list[int] = record["received"].get(subscription, [])
    seen = set(got)
    covered: list[tuple[float, float]] = []
    for snap in record["snapshots"]:
        position = snap["positions"].get(subscription)
        if position is None:
            continue
        before = snap["before"].get(subscription)
        covered.append((float("-inf") if before is None else before, position))
    lost = [
        seq
        for seq in acked
        if seq not in seen and not any(low < seq <= high for low, high in covered)
    ]
    return Tally(
        received=len(got),
        duplicated=len(got) - len(seen),
        lost=lost,
        out_of_order=sum(1 for a, b in itertools.pairwise(got) if b <= a),
        snapshots=len(covered),
    )
