"""A real Prometheus, loaded with deploy/prometheus/, scrapes a real Redis-backed server and
fires the broker-down and slow-consumer alerts within their `for:` windows.

The test config is the repository's, with 1 s scrape and evaluation intervals and the
server's address as the target. The rules are the repository's, every expression, label and
annotation unchanged, with each `for:` divided by `FOR_DIVISOR` (1m becomes 10 s), so the
test waits seconds, not minutes; the real `for:` values are checked by Prometheus' own rule
engine on the real file in tests/deploy/test_rules.py (`promtool test rules`, whose cases
say an alert is quiet before its `for:` and fires after it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from docs_automation.processes import log_tail
from tests.procs import PrometheusProcess, RedisProcess, ServerProcess, start_prometheus
from tests.wsclient import StalledClient, metric

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
#: Clients that stop reading: HiveSlowConsumers needs more than 5 cut-offs in 5 minutes.
STALLED_CLIENTS = 6
#: Longest the test publishes before every stalled client is cut off, in seconds.
CUT_OFF_WITHIN_SECONDS = 60
#: Slack after an alert's `for:` for a 1 s scrape, a 1 s evaluation and our 0.5 s poll.
FIRING_SLACK_SECONDS = 15
POLL_SECONDS = 0.5
#: The test's rules hold each alert pending this many times shorter than rules.yml does.
FOR_DIVISOR = 6


def _durations(rules: dict[str, Any]) -> dict[str, float]:
    """Each alert's `for:` in seconds (the rules use `Nm` and `Ns`)."""
    units = {"s": 1, "m": 60, "h": 3600}
    found = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            raw = str(rule.get("for", "0s"))
            found[rule["alert"]] = float(raw[:-1]) * units[raw[-1]]
    return found


def _test_rules(rules: dict[str, Any], dest: Path) -> Path:
    """A copy of `rules` in `dest` with every `for:` divided by `FOR_DIVISOR`, in seconds."""
    for group in rules["groups"]:
        for rule in group["rules"]:
            seconds = _durations({"groups": [{"rules": [rule]}]})[rule["alert"]]
            rule["for"] = f"{seconds / FOR_DIVISOR:g}s"
    path = dest / "rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    return path


def _test_config(server: ServerProcess, dest: Path) -> Path:
    """The repository's prometheus.yml with 1 s intervals and the test's rules, aimed at
    `server`."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    repository = yaml.safe_load((DEPLOY / "rules.yml").read_text(encoding="utf-8"))
    assert config["rule_files"] == ["rules.yml"], "the test rewrites rules.yml only"
    config["rule_files"] = [str(_test_rules(repository, dest))]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{server.port}"]}]
    path = dest / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _alerts(prometheus: PrometheusProcess) -> dict[str, str]:
    """Alert name -> state (`pending` or `firing`) from Prometheus' /api/v1/alerts."""
    body = httpx.get(f"{prometheus.url}/api/v1/alerts", timeout=5).json()
    return {a["labels"]["alertname"]: a["state"] for a in body["data"]["alerts"]}


def _wait_scraped(prometheus: PrometheusProcess, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        query = {"query": 'up{job="hive-dashboard"} == 1'}
        body = httpx.get(f"{prometheus.url}/api/v1/query", params=query, timeout=5).json()
        if body["data"]["result"]:
            return
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"Prometheus never scraped the server:\n{log_tail(prometheus.log)}")


def _cut_off_stalled_clients(server: ServerProcess) -> list[StalledClient]:
    """Connect clients that never read, publish until every one is cut off (close 1013)."""
    stalled = [StalledClient(server.ws + "?subscriptions=agents") for _ in range(STALLED_CLIENTS)]
    deadline = time.monotonic() + CUT_OFF_WITHIN_SECONDS
    pad = "x" * 4000
    with httpx.Client(base_url=server.http, timeout=10) as http:
        while metric(server, "leanvibe_ws_backpressure_disconnects_total") < STALLED_CLIENTS:
            assert time.monotonic() < deadline, "the stalled clients were not all cut off"
            for _ in range(50):
                http.post(
                    "/api/dashboard/websocket/broadcast",
                    params={"subscription": "agents"},
                    json={"pad": pad},
                ).raise_for_status()
    return stalled


def test_prometheus_fires_broker_down_and_backpressure_alerts_within_their_for_windows(
    tmp_path: Path,
    redis_server: RedisProcess,
    server_factory: Callable[..., ServerProcess],
) -> None:
    real = _durations(yaml.safe_load((DEPLOY / "rules.yml").read_text(encoding="utf-8")))
    windows = {name: seconds / FOR_DIVISOR for name, seconds in real.items()}
    server = server_factory(
        {
            "REDIS_URL": redis_server.url,
            "WS_REDIS_TIMEOUT_SECONDS": "0.5",
            "WS_REDIS_WAIT_TIMEOUT_MS": "300",
            "WS_SEND_QUEUE_MAX_MESSAGES": "50",
            "WS_SEND_TIMEOUT_SECONDS": "60",
        }
    )
    prometheus = start_prometheus(_test_config(server, tmp_path))
    stalled: list[StalledClient] = []
    try:
        _wait_scraped(prometheus)
        assert _alerts(prometheus).get("HiveBrokerDown") is None

        stalled = _cut_off_stalled_clients(server)
        began = {"HiveSlowConsumers": time.monotonic()}
        redis_server.kill()
        began["HiveBrokerDown"] = time.monotonic()

        pending: dict[str, float] = {}
        firing: dict[str, float] = {}
        deadline = max(began[a] + windows[a] for a in began) + FIRING_SLACK_SECONDS
        while set(firing) != set(began) and time.monotonic() < deadline:
            now = time.monotonic()
            for name, state in _alerts(prometheus).items():
                if name in began:
                    target = firing if state == "firing" else pending
                    target.setdefault(name, now - began[name])
            time.sleep(POLL_SECONDS)
        print(f"\nseconds after the fault: pending {pending}, firing {firing}")
        assert set(firing) == set(began), f"not firing in time:\n{log_tail(prometheus.log)}"
        for name, after in firing.items():
            # Held pending for the whole window, then fired within a few intervals of it.
            assert name in pending and pending[name] < windows[name], name
            assert windows[name] - 1 <= after <= windows[name] + FIRING_SLACK_SECONDS, name
        now_firing = {n for n, s in _alerts(prometheus).items() if s == "firing"}
        assert now_firing == set(began), "an alert fired that nothing provoked"

        redis_server.restart()
        resolved = time.monotonic()
        while "HiveBrokerDown" in _alerts(prometheus):
            assert time.monotonic() - resolved < 30, "HiveBrokerDown stayed after Redis returned"
            time.sleep(POLL_SECONDS)
        print(f"HiveBrokerDown resolved {time.monotonic() - resolved:.1f} s after Redis restarted")
    finally:
        for client in stalled:
            client.close()
        prometheus.stop()
