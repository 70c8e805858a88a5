"""The alert rules and scrape config in deploy/prometheus/, checked by Prometheus' promtool.

`promtool check` parses them as Prometheus will; `promtool test rules` evaluates every
alert against series written in rules.test.yml, with Prometheus' own rule engine.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.procs import ROOT

DEPLOY = ROOT / "deploy" / "prometheus"
RULES = DEPLOY / "rules.yml"
RULE_TESTS = DEPLOY / "rules.test.yml"
CONFIG = DEPLOY / "prometheus.yml"
#: Longest one promtool run may take, in seconds.
PROMTOOL_TIMEOUT_SECONDS = 60


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed; run HIVE_NEED_PROMETHEUS=1 scripts/bootstrap")
    return subprocess.run(
        [binary, *map(str, args)],
        cwd=DEPLOY,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_SECONDS,
        check=False,
    )


def _yaml(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), path
    return doc


def _alerts() -> list[str]:
    return [rule["alert"] for group in _yaml(RULES)["groups"] for rule in group["rules"]]


@pytest.mark.integration
def test_every_rule_file_passes_promtool_check_rules() -> None:
    done = _promtool("check", "rules", RULES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in done.stdout


@pytest.mark.integration
def test_the_scrape_config_passes_promtool_check_config() -> None:
    done = _promtool("check", "config", CONFIG)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.integration
def test_every_alert_passes_its_promtool_unit_tests() -> None:
    done = _promtool("test", "rules", RULE_TESTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.integration
def test_a_wrong_expectation_fails_promtool_test_rules(tmp_path: Path) -> None:
    # The suite's promtool case must be able to fail: the same tests, one summary changed.
    shutil.copy(RULES, tmp_path / RULES.name)
    text = RULE_TESTS.read_text(encoding="utf-8")
    broken = tmp_path / RULE_TESTS.name
    broken.write_text(text.replace("cannot reach Redis", "can reach Redis", 1), encoding="utf-8")
    done = _promtool("test", "rules", broken)
    assert done.returncode != 0
    assert "HiveBrokerDown" in done.stdout + done.stderr


@pytest.mark.unit
def test_every_alert_has_a_case_where_it_fires_and_one_where_it_is_quiet() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in _yaml(RULE_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = set(_alerts())
    assert alerts, "no alerts in rules.yml"
    assert alerts - fires == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested quiet"


@pytest.mark.unit
def test_the_scrape_config_loads_the_rules_and_scrapes_the_metrics_path() -> None:
    config = _yaml(CONFIG)
    assert config["rule_files"] == [RULES.name]
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/api/dashboard/metrics/websockets"
    assert job["job_name"] == "hive-dashboard"
    rules = RULES.read_text(encoding="utf-8")
    assert 'job="hive-dashboard"' in rules
