"""`python -m bench.flake [--runs 20]`: each timing-sensitive test's failure rate under load.

The lane is the tests most exposed to a busy machine: Redis, chaos, backpressure, shutdown,
handshake (request deadlines), browser and hostile-frame tests (selected by name with
pytest's `-k`, so it follows files as they move).
Each run is a whole pytest session of that lane while a CPU hog (one busy process per core)
keeps every core at 100 %, so the waits inside the tests and the product meet the worst
scheduling a CI machine gives. Every run writes JUnit XML; the report counts, per test, how
many runs it failed, errored or was skipped in, prints a table, and writes
`bench/results/flake.json`. Exit status 1 when any test failed in any run: the goal is 0.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["LANE", "main", "outcomes"]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LANE = "redis or chaos or backpressure or shutdown or handshake or browser or hostile"
"""pytest `-k` expression of the flake lane (module and test names)."""
#: Longest one run of the lane may take, in seconds, before it counts as hung (a failure).
RUN_TIMEOUT_SECONDS = 900.0


def _burn() -> None:
    """Keep one core busy until killed."""
    while True:
        pass


def outcomes(junit_xml: str) -> dict[str, str]:
    """Each test's outcome in one JUnit XML report: `passed`, `failed`, `error` or `skipped`.

    Args:
        junit_xml: the text pytest's `--junitxml` wrote.

    Returns:
        Test id (`classname::name`) to outcome.
    """
    found: dict[str, str] = {}
    for case in ET.fromstring(junit_xml).iter("testcase"):
        test = f"{case.get('classname', '')}::{case.get('name', '')}"
        kinds = {child.tag for child in case}
        if "failure" in kinds:
            found[test] = "failed"
        elif "error" in kinds:
            found[test] = "error"
        elif "skipped" in kinds:
            found[test] = "skipped"
        else:
            found[test] = "passed"
    return found


def _run_lane(index: int, out: Path, workers: str, extra: Sequence[str]) -> dict[str, str]:
    report = out / f"run-{index:02d}.xml"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", LANE]
    argv += ["-n", workers, "--dist", "loadgroup", f"--junitxml={report}", *extra]
    try:
        subprocess.run(
            argv,
            cwd=ROOT,
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return {"<whole run>": "failed"}
    if not report.is_file():
        return {"<whole run>": "error"}
    return outcomes(report.read_text(encoding="utf-8"))


def measure(runs: int, workers: str, hog: bool, extra: Sequence[str]) -> dict[str, Any]:
    """Run the lane `runs` times (under a CPU hog when `hog`); return the tally as JSON data."""
    out = RESULTS / "flake"
    out.mkdir(parents=True, exist_ok=True)
    burners = (
        [multiprocessing.Process(target=_burn, daemon=True) for _ in range(os.cpu_count() or 1)]
        if hog
        else []
    )
    for burner in burners:
        burner.start()
    per_test: dict[str, Counter[str]] = {}
    started = time.monotonic()
    try:
        for index in range(runs):
            for test, outcome in _run_lane(index, out, workers, extra).items():
                per_test.setdefault(test, Counter())[outcome] += 1
            print(f"run {index + 1}/{runs} done at {time.monotonic() - started:.0f} s", flush=True)
    finally:
        for burner in burners:
            burner.kill()
            burner.join(5)
    return {
        "runs": runs,
        "hog": hog,
        "cores": os.cpu_count(),
        "seconds": round(time.monotonic() - started, 1),
        "tests": {test: dict(counts) for test, counts in sorted(per_test.items())},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: measure the flake lane, print and save the tally; 1 if anything failed."""
    parser = argparse.ArgumentParser(prog="python -m bench.flake", description=__doc__)
    parser.add_argument("--runs", type=int, default=20, help="runs of the lane (default 20)")
    parser.add_argument("--workers", default="2", help="pytest-xdist workers (default 2)")
    parser.add_argument("--no-hog", action="store_true", help="run without the CPU hog")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    tally = measure(args.runs, args.workers, not args.no_hog, args.pytest_args)
    (RESULTS / "flake.json").write_text(json.dumps(tally, indent=2) + "\n", encoding="utf-8")
    table = Table(
        title=f"flake lane: {tally['runs']} runs, CPU hog {'on' if tally['hog'] else 'off'}"
    )
    for column in ("test", "passed", "failed", "error", "skipped", "failure rate"):
        table.add_column(column)
    bad = 0
    for test, counts in tally["tests"].items():
        failed = counts.get("failed", 0) + counts.get("error", 0)
        bad += failed
        style = "red" if failed else None
        table.add_row(
            test,
            str(counts.get("passed", 0)),
            str(counts.get("failed", 0)),
            str(counts.get("error", 0)),
            str(counts.get("skipped", 0)),
            f"{failed / tally['runs']:.0%}",
            style=style,
        )
    Console().print(table)
    print(
        f"{len(tally['tests'])} tests, {bad} failures in {tally['runs']} runs "
        f"({tally['seconds']} s); goal 0"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
