"""`python -m bench.hostile [--seconds 60]`: hostile clients against a real server, and a
bystander who must not notice them.

A reference server runs as its own process. Several hostile clients send generated hostile
frames in lockstep (a frame, then a `ping`): lone and reversed surrogates, NaN, Infinity,
integers past 4,300 digits, nesting past `max_json_depth`, wrong types in every field,
BOMs, binary frames, frames over the size limit, text frames that are not UTF-8. A
publisher posts hostile bodies. A bystander subscribed to `agents` pings every 0.1 s.

Counted, and held to the floor (exit status 1 when any is missed):

- unexpected closes: every close but 1007 after a frame that is not UTF-8 and 1009 after
  one over `max_frame_bytes` (both RFC 6455 §7.4.1);
- unanswered frames: a frame with no reply before the `ping` sent after it is answered, or
  a `ping` not answered within 2 s (a stall);
- wrong frames: a frame that is not JSON an ordinary parser reads (NaN, lone surrogates);
- publishes: a 5xx, or an acknowledged update that did not reach the bystander exactly
  (same data, same seq, once, in order);
- the bystander's worst wait for a `pong` (floor: under 2 s);
- log lines that are not JSON, and more than one `invalid_utf8_text_frame` line per
  10 s window (the frames that cause it arrive many times a second).

The rate limit is raised for the run: this lane measures hostile content, not floods
(the flood protection has its own tests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.procs import ServerProcess, start_server

__all__ = ["Report", "hostile_body", "hostile_frame", "main", "run"]

PONG_DEADLINE_SECONDS = 2.0
"""Longest any `ping` may wait for its `pong` (the bystander's floor), in seconds."""
BYSTANDER_PERIOD_SECONDS = 0.1
"""Pause between two bystander pings, in seconds."""
PUBLISH_PERIOD_SECONDS = 0.05
"""Pause between two hostile publishes, in seconds."""
CLOSE_DEADLINE_SECONDS = 5.0
"""Longest wait for the close a frame must cause (1007, 1009), in seconds."""
SERVER_ENV = {"WS_RATE_TOKENS_PER_SEC": "100000", "WS_RATE_BURST": "100000"}
LOG_WINDOW_SECONDS = 10.0
"""The server's default `log_repeat_window_seconds`: a log line per kind per window."""
# Every kind of frame, with the close it must cause (None: it must be answered).
EXPECTED_CLOSE = {"json": None, "binary": None, "large": None, "bad_utf8": 1007, "huge": 1009}
_CLIENT_TYPES = ("ping", "subscribe", "unsubscribe", "request_data")
_FIELDS = ("correlation_id", "subscriptions", "resume", "data_type", "params", "pad")
_STRINGS = ("agents", "tasks", "system_health", "", "\ud800", "\udc00\ud83d", "a\udfffb", "😀")
_RAW_NUMBERS = ("NaN", "-Infinity", "1e999", "9" * 4400, "-0", "1e308", "12345678901234567890")


def _string(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(_STRINGS)
    return "".join(
        chr(rng.choice((rng.randrange(32, 0x2FF), rng.randrange(0xD800, 0xE000))))
        for _ in range(rng.randrange(1, 6))
    )


def _value(rng: random.Random, depth: int = 0) -> str:
    """A JSON-ish value as text: hostile scalars, containers, deep nesting spliced in."""
    pick = rng.random()
    if pick < 0.3 or depth > 3:
        return json.dumps(_string(rng))  # ensure_ascii: surrogates travel as \\u escapes
    if pick < 0.45:
        return rng.choice(_RAW_NUMBERS)
    if pick < 0.55:
        n = rng.choice((31, 32, 33, 900, 20_000))
        return "[" * n + "]" * n
    if pick < 0.65:
        return rng.choice(("true", "null", "0", "3.5", '"x"'))
    if pick < 0.8:
        return "[" + ",".join(_value(rng, depth + 1) for _ in range(rng.randrange(4))) + "]"
    items = (
        f"{json.dumps(_string(rng))}:{_value(rng, depth + 1)}" for _ in range(rng.randrange(4))
    )
    return "{" + ",".join(items) + "}"


def hostile_frame(rng: random.Random) -> tuple[str, str | bytes]:
    """One hostile client frame: its kind (a key of `EXPECTED_CLOSE`) and its payload.

    A `bad_utf8` payload is bytes to send as a text frame; `binary` is bytes to send as a
    binary frame; every other payload is text.
    """
    pick = rng.random()
    if pick < 0.03:
        return "bad_utf8", b'{"type":"ping","pad":"' + bytes(
            [rng.choice((0xFF, 0xC3, 0xED))]
        ) + b'"}'
    if pick < 0.06:
        return "binary", rng.randbytes(rng.randrange(1, 64))
    if pick < 0.08:
        return "large", '{"type":"ping","pad":"' + "x" * 70_000 + '"}'
    if pick < 0.085:
        return "huge", "x" * 300_000
    kind = rng.choice(_CLIENT_TYPES) if rng.random() < 0.8 else _string(rng)
    fields = [f'"type":{json.dumps(kind)}']
    fields += [f'"{name}":{_value(rng)}' for name in rng.sample(_FIELDS, rng.randrange(4))]
    text = "{" + ",".join(fields) + "}"
    return "json", ("\ufeff" + text) if rng.random() < 0.02 else text


def hostile_body(rng: random.Random) -> bytes:
    """One publish body: valid data, hostile JSON text, or bytes that are not UTF-8."""
    pick = rng.random()
    if pick < 0.35:
        return json.dumps({"n": rng.randrange(10**6), "s": "é😀"}).encode()
    if pick < 0.45:
        return rng.randbytes(rng.randrange(1, 40))
    text = "{" + f'"k":{_value(rng)}' + "}"
    return text.encode("utf-8", "surrogatepass")  # CESU-8 bytes where a surrogate is raw


def _strict(text: str) -> dict[str, Any]:
    """Parse a server frame as a strict peer would (no NaN, no lone surrogates)."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    text.encode("utf-8")  # raises on a lone surrogate
    frame = json.loads(text, parse_constant=refuse)
    if not isinstance(frame, dict):
        raise ValueError("a frame is not an object")
    return frame


@dataclass
class Report:
    """What one run counted (see the module docstring for each floor)."""

    seconds: float = 0.0
    hostile_frames: int = 0
    expected_closes: int = 0
    unexpected_closes: list[str] = field(default_factory=list)
    unanswered_frames: list[str] = field(default_factory=list)
    wrong_frames: list[str] = field(default_factory=list)
    publishes_ok: int = 0
    publishes_refused: int = 0
    publish_errors: list[str] = field(default_factory=list)
    bystander_pings: int = 0
    bystander_worst_wait_seconds: float = 0.0
    log_lines_not_json: list[str] = field(default_factory=list)
    invalid_utf8_log_lines: int = 0

    def failures(self) -> list[str]:
        """Every floor missed, as sentences; empty when the run met them all."""
        out = [
            f"{len(items)} {name.replace('_', ' ')}: {items[:3]}"
            for name, items in (
                ("unexpected_closes", self.unexpected_closes),
                ("unanswered_frames", self.unanswered_frames),
                ("wrong_frames", self.wrong_frames),
                ("publish_errors", self.publish_errors),
                ("log_lines_not_json", self.log_lines_not_json),
            )
            if items
        ]
        # One line per log window (the server's default, 10 s) at most, plus the first.
        if self.invalid_utf8_log_lines > self.seconds // LOG_WINDOW_SECONDS + 1:
            out.append(f"{self.invalid_utf8_log_lines} invalid_utf8_text_frame log lines")
        if self.bystander_worst_wait_seconds >= PONG_DEADLINE_SECONDS:
            out.append(f"the bystander waited {self.bystander_worst_wait_seconds:.2f} s")
        if not self.hostile_frames or not self.bystander_pings:
            out.append("nothing was measured")
        return out


class _Run:
    def __init__(self, server: ServerProcess, report: Report, stop_at: float) -> None:
        self.server = server
        self.report = report
        self.stop_at = stop_at
        self.acked: dict[int, Any] = {}  # seq -> the data the publisher sent
        self.delivered: list[tuple[int, Any]] = []  # what the bystander received, in order

    def running(self) -> bool:
        return time.monotonic() < self.stop_at

    async def _pong(self, ws: ClientConnection, cid: str, who: str) -> int | None:
        """Send a ping; return how many non-update frames came before its pong (None: stall)."""
        await ws.send(json.dumps({"type": "ping", "correlation_id": cid}))
        replies = 0
        deadline = time.monotonic() + PONG_DEADLINE_SECONDS
        try:
            while True:
                raw = await asyncio.wait_for(ws.recv(), max(0.0, deadline - time.monotonic()))
                frame = self._check(raw, who)
                if frame.get("type") == "pong" and frame.get("correlation_id") == cid:
                    return replies
                if "seq" in frame and frame.get("subscription") == "agents" and who == "bystander":
                    self.delivered.append((frame["seq"], frame.get("data")))
                elif "seq" not in frame:
                    replies += 1
        except TimeoutError:
            return None

    def _check(self, raw: str | bytes, who: str) -> dict[str, Any]:
        try:
            if isinstance(raw, bytes):
                raise ValueError("a binary frame")
            return _strict(raw)
        except ValueError as exc:
            self.report.wrong_frames.append(f"{who}: {exc}: {raw[:80]!r}")
            return {}

    async def hostile(self, number: int, rng: random.Random) -> None:
        report = self.report
        while self.running():
            async with connect(self.server.ws + "?subscriptions=", max_size=None) as ws:
                self._check(await ws.recv(), "hostile")
                while self.running():
                    kind, payload = hostile_frame(rng)
                    report.hostile_frames += 1
                    await ws.send(payload, text=kind != "binary")
                    expected = EXPECTED_CLOSE[kind]
                    if expected is not None:
                        await self._closed(ws, expected, repr(payload)[:60])
                        break
                    try:
                        replies = await self._pong(
                            ws, f"h{number}-{report.hostile_frames}", "hostile"
                        )
                    except ConnectionClosed as exc:
                        report.unexpected_closes.append(f"{exc.rcvd}: after {payload!r:.80}")
                        break
                    if not replies:
                        report.unanswered_frames.append(
                            f"{'stall' if replies is None else 'no reply'}: {payload!r:.80}"
                        )

    async def _closed(self, ws: ClientConnection, code: int, what: str) -> None:
        try:
            async with asyncio.timeout(CLOSE_DEADLINE_SECONDS):
                while True:
                    await ws.recv()
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == code:
                self.report.expected_closes += 1
                return
            self.report.unexpected_closes.append(f"{exc.rcvd} instead of {code}: {what}")
        except TimeoutError:
            self.report.unexpected_closes.append(f"no close {code} within the deadline: {what}")

    async def bystander(self) -> None:
        report = self.report
        async with connect(self.server.ws + "?subscriptions=agents") as ws:
            self._check(await ws.recv(), "bystander")
            while self.running():
                report.bystander_pings += 1
                started = time.monotonic()
                replies = await self._pong(ws, f"b-{report.bystander_pings}", "bystander")
                waited = time.monotonic() - started if replies is not None else float("inf")
                report.bystander_worst_wait_seconds = max(
                    report.bystander_worst_wait_seconds, waited
                )
                if replies:
                    report.wrong_frames.append(f"bystander: {replies} frames it never asked for")
                await asyncio.sleep(BYSTANDER_PERIOD_SECONDS)
            # Collect the last updates: a final ping orders them before its pong.
            await self._pong(ws, "b-last", "bystander")

    async def publisher(self, rng: random.Random) -> None:
        report = self.report
        url = f"{self.server.http}/api/dashboard/websocket/broadcast?subscription=agents"
        async with httpx.AsyncClient(timeout=PONG_DEADLINE_SECONDS * 5) as http:
            while self.running():
                body = hostile_body(rng)
                response = await http.post(
                    url, content=body, headers={"Content-Type": "application/json"}
                )
                if response.status_code == 200:
                    report.publishes_ok += 1
                    self.acked[response.json()["seq"]] = json.loads(body.decode("utf-8"))
                elif response.status_code in (413, 422):
                    report.publishes_refused += 1
                else:
                    report.publish_errors.append(f"{response.status_code}: {body[:60]!r}")
                await asyncio.sleep(PUBLISH_PERIOD_SECONDS)

    def check_deliveries(self) -> None:
        seqs = [seq for seq, _ in self.delivered]
        if seqs != sorted(set(seqs)):
            self.report.publish_errors.append(
                "the bystander received updates twice or out of order"
            )
        got = dict(self.delivered)
        for seq, data in self.acked.items():
            if got.get(seq, "missing") != data:
                self.report.publish_errors.append(
                    f"seq {seq}: sent {data!r:.60}, got {got.get(seq, 'nothing')!r:.60}"
                )
        for seq in set(got) - set(self.acked):
            self.report.publish_errors.append(f"seq {seq} was delivered but never acknowledged")


BANNER = ("reference server: ", "  health:", "  metrics:", "  api:")


async def run(seconds: float, *, clients: int = 4, seed: int = 0) -> Report:
    """Run the lane for `seconds` against a fresh server; return what it counted.

    Args:
        seconds: how long the hostile clients, publisher and bystander run.
        clients: hostile clients sending at once.
        seed: seeds every generator, so a failing run can be replayed.
    """
    report = Report(seconds=seconds)
    server = await asyncio.to_thread(start_server, SERVER_ENV)
    try:
        lane = _Run(server, report, time.monotonic() + seconds)
        await asyncio.gather(
            lane.bystander(),
            lane.publisher(random.Random(seed)),
            *(lane.hostile(n, random.Random(seed * 1000 + n + 1)) for n in range(clients)),
        )
        lane.check_deliveries()
    finally:
        await asyncio.to_thread(server.stop)
    for line in server.log.read_text(errors="replace").splitlines():
        if not line.startswith(BANNER):
            try:
                event = json.loads(line)
            except ValueError:
                report.log_lines_not_json.append(line[:120])
                continue
            report.invalid_utf8_log_lines += event.get("event") == "invalid_utf8_text_frame"
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Run the lane, print the counts; exit status 1 when a floor is missed."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.hostile", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run (default 60)")
    parser.add_argument("--clients", type=int, default=4, help="hostile clients (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every generator")
    args = parser.parse_args(argv)
    report = asyncio.run(run(args.seconds, clients=args.clients, seed=args.seed))
    summary = {k: len(v) if isinstance(v, list) else v for k, v in asdict(report).items()}
    print(json.dumps(summary, indent=2))
    failures = report.failures()
    for failure in failures:
        print("FLOOR MISSED:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
