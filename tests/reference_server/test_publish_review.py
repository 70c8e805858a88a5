"""Review of the broadcast route's short way in (`DirectPublish`, reference_server/publishing.py).

The promise: a publish answered by `DirectPublish` behaves exactly as it did through the
FastAPI route. Each test here is a defect found in review (now fixed), against a real
server process over real sockets; each passed before the change too (cadb9b2).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from docs_automation import processes
from tests.procs import ROOT, free_port

pytestmark = pytest.mark.integration

BROADCAST = "/api/dashboard/websocket/broadcast"

# `python -m reference_server` with a global OpenTelemetry tracer provider installed first,
# as `opentelemetry-instrument` or an APM agent does. FastAPI's native telemetry is on as
# soon as a provider is configured (with `fastapi[standard]`, `FASTAPI_OTEL_AUTO_CONFIGURE=true`
# and `OTEL_EXPORTER_OTLP_ENDPOINT` alone, no code): it opens a server span per request and
# names it, and labels `http.server.request.duration`, after the route the router selected
# (`http.route`). Only the OpenTelemetry API is installed here, so the provider is a minimal
# one that writes every ended span to a JSON-lines file.
_TRACED_SERVER = """
import contextlib, json, os, sys
from opentelemetry import trace

SPANS = os.environ["REVIEW_SPANS_FILE"]


class Span(trace.NonRecordingSpan):
    def __init__(self, name, attributes):
        super().__init__(trace.INVALID_SPAN_CONTEXT)
        self.name, self.attributes = name, dict(attributes or {})

    def is_recording(self):
        return True

    def set_attribute(self, key, value):
        self.attributes[key] = value

    def set_attributes(self, attributes):
        self.attributes.update(attributes)

    def update_name(self, name):
        self.name = name

    def end(self, end_time=None):
        shown = {k: v for k, v in self.attributes.items() if isinstance(v, (str, int, float))}
        with open(SPANS, "a") as f:
            f.write(json.dumps({"name": self.name, "attributes": shown}) + "\\n")


class Tracer(trace.Tracer):
    def start_span(self, name, context=None, kind=trace.SpanKind.INTERNAL, attributes=None,
                   links=None, start_time=None, record_exception=True,
                   set_status_on_exception=True):
        return Span(name, attributes)

    @contextlib.contextmanager
    def start_as_current_span(self, name, context=None, kind=trace.SpanKind.INTERNAL,
                              attributes=None, links=None, start_time=None,
                              record_exception=True, set_status_on_exception=True,
                              end_on_exit=True):
        span = self.start_span(name, attributes=attributes)
        with trace.use_span(span, end_on_exit=end_on_exit):
            yield span


class Provider(trace.TracerProvider):
    def get_tracer(self, *args, **kwargs):
        return Tracer()


trace.set_tracer_provider(Provider())

from reference_server.__main__ import main

sys.exit(main())
"""


@pytest.fixture
def traced_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A reference server process with a tracer provider: (base URL, spans file)."""
    launcher = tmp_path / "traced_server.py"
    launcher.write_text(_TRACED_SERVER)
    spans = tmp_path / "spans.jsonl"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WS_") and k != "REDIS_URL"}
    env.update(
        {
            "WS_HOST": "127.0.0.1",
            "WS_PORT": str(port),
            "REVIEW_SPANS_FILE": str(spans),
            "PYTHONPATH": str(ROOT),
        }
    )
    log = Path(tempfile.mkstemp(prefix="hive-traced-", suffix=".log")[1])
    proc = processes.spawn(
        [sys.executable, str(launcher)],
        cwd=ROOT,
        env=env,
        log=log,
        timeout=20,
        url=f"http://127.0.0.1:{port}/health",
        what="the traced reference server",
    )
    try:
        yield f"http://127.0.0.1:{port}", spans
    finally:
        processes.stop(proc, grace=10)
        log.unlink(missing_ok=True)


def _spans_of(spans: Path, path: str) -> list[dict[str, Any]]:
    """The server spans (one per request) written so far for requests to `path`."""
    if not spans.exists():
        return []
    rows = [json.loads(line) for line in spans.read_text().splitlines() if line]
    return [r for r in rows if r["attributes"].get("url.path") == path]


def test_a_publish_is_traced_under_its_route_as_through_the_fastapi_route(
    traced_server: tuple[str, Path],
) -> None:
    base, spans = traced_server
    with httpx.Client(base_url=base, timeout=10) as http:
        published = http.post(BROADCAST, params={"subscription": "agents"}, json={"a": 1})
        assert published.status_code == 200
        # Answered by the FastAPI route on every version: no subscription, FastAPI's 422.
        routed = http.post(BROADCAST, json={"a": 1})
        assert routed.status_code == 422
    # The server spans end once each response is complete; give the file a moment.
    deadline = time.monotonic() + 5
    while len(ours := _spans_of(spans, BROADCAST)) < 2:
        assert time.monotonic() < deadline, f"the server ended no two spans: {ours}"
        time.sleep(0.05)
    publish = next(s for s in ours if s["attributes"].get("url.query") == "subscription=agents")
    refused = next(s for s in ours if "url.query" not in s["attributes"])
    # The harness works: the request FastAPI routed is named after its route.
    assert refused["name"] == f"POST {BROADCAST}", refused
    assert refused["attributes"].get("http.route") == BROADCAST, refused
    # The publish itself, on the same path: the same name and route.
    assert publish["attributes"].get("http.route") == BROADCAST, publish
    assert publish["name"] == f"POST {BROADCAST}", publish
