"""Review of the TypeScript client package (issue 15): defects found by attacking it, kept as
regression tests now that each is fixed (the package's `test/review.test.js` scripts the same
faults, one per public bug report of another client).

Each test runs a small Node program against real processes on loopback: the built package
from `clients/typescript/dist`, `ws` standing in for the browser's `WebSocket`, and a real
reference server (or, for the flapping case, a real server process that accepts and then
closes, as an overloaded or draining server does).
"""

# ruff: noqa: E501  (the Node programs are JavaScript in strings)
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.test_typescript import PACKAGE, build_package
from tests.procs import ROOT, ServerProcess, free_port, start_server

#: Longest one Node program may run, in seconds.
NODE_TIMEOUT_SECONDS = 40.0

PRELUDE = f"""
import WebSocket from {json.dumps(str(ROOT / "node_modules" / "ws" / "index.js"))};
import {{ HiveClient }} from {json.dumps(str(PACKAGE / "dist" / "index.js"))};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
async function until(done, ms) {{
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline) await sleep(10);
}}
async function publish(http, subscription, data) {{
  const response = await fetch(`${{http}}/api/dashboard/websocket/broadcast?subscription=${{subscription}}`, {{
    method: "POST",
    headers: {{ "Content-Type": "application/json" }},
    body: JSON.stringify(data),
    signal: AbortSignal.timeout(5000),
  }});
  if (!response.ok) throw new Error(`publish: HTTP ${{response.status}}`);
  return (await response.json()).seq;
}}
const made = [];
class Counting extends WebSocket {{
  constructor(url) {{
    super(url);
    made.push(url);
  }}
}}
"""


def run_node(tmp_path: Path, body: str) -> dict[str, object]:
    """Run `body` after the prelude; it prints one JSON line (its result) last."""
    script = tmp_path / "program.mjs"
    script.write_text(PRELUDE + textwrap.dedent(body))
    proc = subprocess.run(
        ["node", str(script)],
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_SECONDS,
        check=False,
    )
    assert proc.returncode == 0, f"node exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def serve(env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """Build the package, then run a reference server with `env` until the fixture ends."""
    build_package()
    srv = start_server(env)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    yield from serve()


@pytest.mark.integration
def test_a_throwing_snapshot_handler_does_not_lose_the_stream(
    server: ServerProcess, tmp_path: Path
) -> None:
    result = run_node(
        tmp_path,
        f"""
        // A browser reports an exception thrown from a socket's message handler and carries
        // on; Node would exit, so report it the same way.
        process.on("uncaughtException", (error) => console.log(`reported: ${{error.message}}`));
        const http = {json.dumps(server.http)};
        const client = new HiveClient({{ url: {json.dumps(server.ws)}, WebSocket }});
        let snapshots = 0;
        client.on("snapshot", () => {{
          snapshots += 1;
          if (snapshots === 1) throw new Error("a bug in the app's first render");
        }});
        const seen = [];
        client.on("update", (update) => update.data.agent_id === "rev-throw" && seen.push(update.seq));
        client.start();
        const timer = setTimeout(() => {{ throw new Error("no snapshot within 10 s"); }}, 10_000);
        await client.snapshot("agent_status", ["agents"]);
        clearTimeout(timer);
        const published = [];
        for (let i = 0; i < 5; i++) published.push(await publish(http, "agents", {{ agent_id: "rev-throw", status: `s${{i}}` }}));
        await until(() => seen.length >= published.length, 3000);
        client.stop();
        console.log(JSON.stringify({{ published, seen }}));
        process.exit(0);
        """,
    )
    assert result["seen"] == result["published"], result


#: A server that completes every handshake, says `connection_established`, then closes 1013
#: ("try again later") at once: what an overloaded or draining server, or one whose backend
#: fails right after the upgrade, looks like to a client (y-websocket#195, chat-gui#872).
FLAPPING_SERVER = """
import asyncio, json, sys
from websockets.asyncio.server import serve

async def handler(ws):
    await ws.send(json.dumps({"type": "connection_established", "connection_id": "c",
        "subscriptions": [], "server_time": "2026-01-01T00:00:00Z", "contract_version": "1.2.0"}))
    await ws.close(1013, "try again later")

async def main():
    async with serve(handler, "127.0.0.1", int(sys.argv[1])):
        print("ready", flush=True)
        await asyncio.sleep(120)

asyncio.run(main())
"""


@pytest.fixture
def flapping_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", FLAPPING_SERVER, str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield f"ws://127.0.0.1:{port}/api/dashboard/ws/dashboard"
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


#: How long the client runs against the flapping server, ms.
FLAP_MS = 3000
#: Most connections a backoff that grows (base 100 ms, cap 1 s, full jitter) makes in FLAP_MS:
#: its mean waits are 50, 100, 200, 400, then 500 ms, about 9 connections; a backoff pinned
#: at its first step makes about 50.
FLAP_MAX_CONNECTIONS = 20


@pytest.mark.hostile
def test_backoff_grows_when_the_server_closes_right_after_accepting(
    flapping_server: str, tmp_path: Path
) -> None:
    build_package()
    result = run_node(
        tmp_path,
        f"""
        const client = new HiveClient({{ url: {json.dumps(flapping_server)}, WebSocket: Counting }});
        const codes = new Set();
        client.on("close", ({{ code }}) => codes.add(code));
        client.start();
        await sleep({FLAP_MS});
        client.stop();
        console.log(JSON.stringify({{ connections: made.length, codes: [...codes] }}));
        process.exit(0);
        """,
    )
    print(f"flapping server: {result['connections']} connections in {FLAP_MS} ms")
    assert 1013 in result["codes"], result  # type: ignore[operator]
    assert result["connections"] <= FLAP_MAX_CONNECTIONS, result  # type: ignore[operator]


@pytest.mark.integration
def test_a_metrics_snapshot_does_not_swallow_agent_updates(
    server: ServerProcess, tmp_path: Path
) -> None:
    result = run_node(
        tmp_path,
        f"""
        const http = {json.dumps(server.http)};
        const client = new HiveClient({{ url: {json.dumps(server.ws)}, WebSocket }});
        const seen = [];
        const gaps = [];
        client.on("update", (update) => update.data.agent_id === "rev-metrics" && seen.push(update.seq));
        client.on("gap", (gap) => gaps.push(gap));
        client.start();
        await client.snapshot("agent_status", ["agents"]);
        const published = [];
        let publishing = true;
        const publisher = (async () => {{
          for (let round = 0; publishing && round < 400; round++) {{
            const batch = [];
            for (let i = 0; i < 5; i++) batch.push(publish(http, "agents", {{ agent_id: "rev-metrics", status: `r${{round}}` }}));
            published.push(...(await Promise.all(batch)));
            await sleep(5);
          }}
        }})();
        // The metrics panel refreshes its figures a few times while agents stream.
        for (let i = 0; i < 10; i++) {{
          await sleep(100);
          await client.snapshot("coordination_metrics", ["agents"]);
        }}
        publishing = false;
        await publisher;
        await until(() => seen.length >= published.length, 3000);
        client.stop();
        const delivered = new Set(seen);
        const missing = published.filter((seq) => !delivered.has(seq));
        console.log(JSON.stringify({{ published: published.length, seen: seen.length, missing: missing.length, gaps: gaps.length }}));
        process.exit(0);
        """,
    )
    assert result["missing"] == 0, result


@pytest.mark.integration
def test_an_agent_status_snapshot_holds_every_agent(server: ServerProcess, tmp_path: Path) -> None:
    # 40 agents of about 8 KB each: 320 KB of agent state, well inside the server's 4 MiB
    # and 10,000-agent bounds, past one answer's 256 KiB.
    result = run_node(
        tmp_path,
        f"""
        const http = {json.dumps(server.http)};
        const names = [];
        for (let i = 0; i < 40; i++) {{
          const name = `rev-big-${{String(i).padStart(2, "0")}}`;
          names.push(name);
          await publish(http, "agents", {{ agent_id: name, status: "idle", note: "x".repeat(8000) }});
        }}
        const client = new HiveClient({{ url: {json.dumps(server.ws)}, WebSocket }});
        client.start();
        const timer = setTimeout(() => {{ throw new Error("no snapshot within 10 s"); }}, 10_000);
        const snapshot = await client.snapshot("agent_status", ["agents"]);
        clearTimeout(timer);
        client.stop();
        const held = new Set(snapshot.data.agents.map((agent) => agent.agent_id));
        console.log(JSON.stringify({{
          missing: names.filter((name) => !held.has(name)).length,
          truncated: snapshot.data.truncated ?? false,
        }}));
        process.exit(0);
        """,
    )
    assert result["missing"] == 0, result


@pytest.fixture(
    scope="module",
    params=[
        pytest.param({}, id="default"),
        # Replies held by the window made each page's round trip slow enough for the
        # updates buffered meanwhile to overflow the client's snapshot buffer.
        pytest.param({"WS_WRITE_COALESCE_WINDOW_SECONDS": "0.01"}, id="coalesce-window"),
        pytest.param({"WS_WRITE_COALESCE_WINDOW_SECONDS": "0"}, id="no-window"),
    ],
)
def small_frame_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """A server whose answers hold about two 8 KB agents: 40 agents take 20 pages."""
    yield from serve(
        {"WS_MAX_FRAME_BYTES": "20480", "WS_MAX_INBOUND_MESSAGE_BYTES": "16384", **request.param}
    )


@pytest.mark.integration
def test_a_paged_snapshot_and_the_stream_hold_each_update_once(
    small_frame_server: ServerProcess, tmp_path: Path
) -> None:
    # 40 agents of 8 KB, updated while the 20 pages are taken: every update is either in the
    # snapshot (the agent's `seq` is at or above it) or delivered once after it, never both.
    server = small_frame_server
    result = run_node(
        tmp_path,
        f"""
        const http = {json.dumps(server.http)};
        const note = "y".repeat(8000);
        for (let i = 0; i < 40; i++) await publish(http, "agents", {{ agent_id: `rev-page-${{String(i).padStart(2, "0")}}`, note }});
        const client = new HiveClient({{ url: {json.dumps(server.ws)}, WebSocket }});
        const seen = [];
        client.on("update", (update) => String(update.data.agent_id).startsWith("rev-page-") && seen.push([update.data.agent_id, update.seq]));
        client.start();
        const published = [];
        let publishing = true;
        const publisher = (async () => {{
          for (let round = 0; publishing && round < 100; round++) {{
            // Five at once, so some land between two pages.
            const ids = [0, 1, 2, 3, 4].map((i) => `rev-page-${{String((round * 5 + i) % 40).padStart(2, "0")}}`);
            const seqs = await Promise.all(ids.map((id) => publish(http, "agents", {{ agent_id: id, note, round }})));
            ids.forEach((id, i) => published.push([id, seqs[i]]));
          }}
        }})();
        const timer = setTimeout(() => {{ throw new Error("no snapshot within 15 s"); }}, 15_000);
        const snapshot = await client.snapshot("agent_status", ["agents"]);
        clearTimeout(timer);
        await sleep(200);
        publishing = false;
        await publisher;
        await until(() => false, 1000);
        client.stop();
        const held = new Map(snapshot.data.agents.map((agent) => [agent.agent_id, agent.seq]));
        const delivered = new Map();
        for (const [, seq] of seen) delivered.set(seq, (delivered.get(seq) ?? 0) + 1);
        let lost = 0, twice = 0;
        for (const [id, seq] of published) {{
          const inSnapshot = (held.get(id) ?? 0) >= seq;
          const times = delivered.get(seq) ?? 0;
          if (!inSnapshot && times === 0) lost++;
          if (times + (inSnapshot ? 1 : 0) > 1) twice++;
        }}
        console.log(JSON.stringify({{ published: published.length, delivered: seen.length, lost, twice }}));
        process.exit(0);
        """,
    )
    print(f"paged snapshot under load: {result}")
    assert result["lost"] == 0 and result["twice"] == 0, result


@pytest.fixture(scope="module")
def secured_server() -> Iterator[ServerProcess]:
    yield from serve({"WS_AUTH_REQUIRED": "true", "WS_AUTH_TOKEN": "fresh-token"})


@pytest.mark.integration
def test_a_refreshed_token_is_used_on_the_next_connection(
    secured_server: ServerProcess, tmp_path: Path
) -> None:
    result = run_node(
        tmp_path,
        f"""
        const options = {{ url: {json.dumps(secured_server.ws)}, WebSocket: Counting, token: "expired-token" }};
        const client = new HiveClient(options);
        const closes = [];
        let opened = 0;
        client.on("close", ({{ code }}) => closes.push(code));
        client.on("connection_established", () => (opened += 1));
        client.start();
        await until(() => closes.includes(4401), 5000);
        // The app refreshes its token and connects again.
        client.setToken("fresh-token");
        client.start();
        await until(() => closes.length >= 2 || client.connected, 5000);
        const connected = client.connected;
        client.stop();
        console.log(JSON.stringify({{ closes, connected, tokens: made.map((url) => new URL(url).searchParams.get("access_token")) }}));
        process.exit(0);
        """,
    )
    assert result["connected"], result


@pytest.mark.integration
def test_a_ping_rejects_when_the_connection_closes(server: ServerProcess, tmp_path: Path) -> None:
    result = run_node(
        tmp_path,
        f"""
        const client = new HiveClient({{ url: {json.dumps(server.ws)}, WebSocket, replyTimeoutMs: 8000 }});
        client.start();
        await until(() => client.connected, 5000);
        const asked = Date.now();
        const outcome = client.ping().then(() => "resolved", () => "rejected");
        client.stop();
        const settled = await Promise.race([outcome, sleep(2000).then(() => "pending")]);
        console.log(JSON.stringify({{ settled, ms: Date.now() - asked }}));
        process.exit(0);
        """,
    )
    assert result["settled"] == "rejected", result


@pytest.mark.integration
def test_a_full_outbound_queue_does_not_stall_the_snapshot(
    server: ServerProcess, tmp_path: Path
) -> None:
    result = run_node(
        tmp_path,
        f"""
        const uncaught = [];
        process.on("uncaughtException", (error) => uncaught.push(error.message));
        const client = new HiveClient({{ url: {json.dumps(server.ws)}, WebSocket, maxOutboundBytes: 4096 }});
        client.start();
        const asked = Date.now();
        const taken = client.snapshot("agent_status", ["agents"]).then(() => Date.now() - asked, () => -1);
        // The app queues its own frames (sent at the rate limit) until the queue is full.
        let queued = 0;
        try {{
          for (; queued < 1000; queued++) client.send({{ type: "ping", correlation_id: `app-${{queued}}` }});
        }} catch {{}}
        const ms = await Promise.race([taken, sleep(5000).then(() => null)]);
        client.stop();
        console.log(JSON.stringify({{ queued, ms, uncaught }}));
        process.exit(0);
        """,
    )
    print(f"snapshot behind a full app queue: {result['ms']} ms")
    assert result["uncaught"] == [] and result["ms"] is not None, result


@pytest.mark.integration
def test_back_online_while_hidden_reconnects(server: ServerProcess, tmp_path: Path) -> None:
    result = run_node(
        tmp_path,
        f"""
        // `window` and `document` stand-ins, as the package's own node tests use.
        const target = new EventTarget();
        const navigator = {{ onLine: true }};
        let visibilityState = "visible";
        const on = (type, fn) => target.addEventListener(type, fn);
        const off = (type, fn) => target.removeEventListener(type, fn);
        const environment = {{
          window: {{ addEventListener: on, removeEventListener: off, navigator }},
          document: {{ addEventListener: on, removeEventListener: off, get visibilityState() {{ return visibilityState; }} }},
        }};
        const fire = (type) => target.dispatchEvent(new Event(type));
        const client = new HiveClient({{ url: {json.dumps(server.ws)}, WebSocket: Counting, environment, subscriptions: ["alerts"] }});
        client.start();
        await until(() => client.connected, 5000);
        // The user switches to another app; then the network drops and comes back.
        visibilityState = "hidden";
        fire("visibilitychange");
        navigator.onLine = false;
        fire("offline");
        await sleep(300);
        navigator.onLine = true;
        fire("online");
        await until(() => client.connected, 5000);
        const connected = client.connected;
        client.stop();
        console.log(JSON.stringify({{ connected, sockets: made.length }}));
        process.exit(0);
        """,
    )
    assert result["connected"], result


@pytest.mark.integration
def test_latency_is_the_round_trip_not_the_queueing(server: ServerProcess, tmp_path: Path) -> None:
    result = run_node(
        tmp_path,
        f"""
        const client = new HiveClient({{ url: {json.dumps(server.ws)}, WebSocket }});
        client.start();
        await until(() => client.connected, 5000);
        // The app asks for some data (60 frames: 3 s at 20 frames/s), then measures latency.
        for (let i = 0; i < 60; i++) client.send({{ type: "request_data", data_type: "system_health", params: {{}}, correlation_id: `q-${{i}}` }});
        const latency = await client.ping();
        client.stop();
        console.log(JSON.stringify({{ latency }}));
        process.exit(0);
        """,
    )
    print(f"latency behind 60 queued frames: {result['latency']} ms")
    assert result["latency"] < 500, result  # type: ignore[operator]


@pytest.mark.hostile
def test_a_refused_snapshot_does_not_hammer_the_server(
    server: ServerProcess, tmp_path: Path
) -> None:
    result = run_node(
        tmp_path,
        f"""
        const client = new HiveClient({{ url: {json.dumps(server.ws)}, WebSocket: Counting, subscriptions: ["alerts"] }});
        const problems = [];
        client.on("problem", (error) => problems.push(error.message));
        client.start();
        // A data type of a newer protocol version; the typed API is bypassed as plain JS would.
        let refused = null;
        client.snapshot("agent_history", ["agents"]).catch((error) => (refused = error.message));
        await sleep({FLAP_MS});
        const connected = client.connected;
        client.stop();
        console.log(JSON.stringify({{ connections: made.length, connected, refused, problem: problems[0] ?? null }}));
        process.exit(0);
        """,
    )
    print(f"refused snapshot: {result['connections']} connection(s) in {FLAP_MS} ms")
    # Refused for good: rejected to the app, and the one healthy connection kept.
    assert result["connections"] == 1 and result["connected"], result
    assert "Unknown data type" in str(result["refused"]), result
