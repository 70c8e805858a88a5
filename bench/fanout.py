"""One command for every figure: `python -m bench.fanout [--smoke] [--rounds N] ...`.

It starts each server under test as its own process, drives it with load-generator
processes on loopback, prints the tables (ratios against the baselines of the same run),
writes the results as JSON to `bench/results/`, draws the plots into `docs/assets/bench/`
and rewrites the results section of `docs/explanation/performance.md`. `--smoke` runs every
measurement at toy sizes in seconds and writes only where `--out` points.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.procs import ROOT

from . import report, scenarios
from .loadgen import raise_fd_limit
from .targets import TARGETS, Target, start

__all__ = ["main", "render_page", "run"]

RESULTS = ROOT / "bench" / "results"
ASSETS = ROOT / "docs" / "assets" / "bench"
PAGE = ROOT / "docs" / "explanation" / "performance.md"
BEGIN, END = "<!-- bench:results:begin -->", "<!-- bench:results:end -->"
MEASUREMENTS = ("fanout", "connections", "isolation", "recovery")
#: Servers each measurement runs on unless `--targets` narrows them.
DEFAULT_ON = {
    "fanout": TARGETS,
    "connections": ("ours", "bare-websockets", "bare-fastapi"),
    "isolation": ("ours", "bare-websockets", "bare-fastapi"),
    "recovery": ("ours-redis-1", "ours-redis-3"),
}
#: The smoke run keeps every measurement but runs the slower ones on fewer servers: its
#: fan-out leaves out three instances with Redis (four processes to start) and the floor
#: that writes once per frame (the same program as the floor per turn, run one way), so
#: it stays well inside its test's bound on a busy 2-core machine.
SMOKE_ON = {
    "fanout": ("ours", "ours-redis-1", "bare-websockets", "bare-fastapi", "floor-turn"),
    "connections": ("ours", "bare-fastapi"),
    "isolation": ("ours",),
    "recovery": ("ours-redis-1",),
}
_ERROR_TAIL_CHARS = 600  # of a failed step's error: its last lines, enough to see why


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(pages / 2**30, 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {
            name: importlib.metadata.version(name)
            for name in ("uvicorn", "websockets", "fastapi", "redis", "uvloop")
        },
    }


def render_page(page: str, section: str) -> str:
    """`page` with the text between the results markers replaced by `section`."""
    head, found, rest = page.partition(BEGIN)
    _, found_end, tail = rest.partition(END)
    if not found or not found_end:
        raise ValueError(f"the page has no {BEGIN} ... {END} markers")
    return f"{head}{BEGIN}\n\n{section}\n{END}{tail}"


def _attempt(
    errors: dict[str, str], key: str, fn: Callable[[], dict[str, Any]]
) -> dict[str, Any] | None:
    try:
        return fn()
    except Exception as exc:  # recorded, printed and turned into a failing exit status
        errors[key] = f"{type(exc).__name__}: {str(exc).strip()[-_ERROR_TAIL_CHARS:]}"
        traceback.print_exc()
        return None


def _with_target(name: str, job: Callable[[Target], dict[str, Any]]) -> dict[str, Any]:
    target = start(name)
    try:
        return job(target)
    finally:
        target.stop()


def run(
    plan: scenarios.Plan,
    measurements: Sequence[str],
    targets: Sequence[str],
    rounds: int,
    on: dict[str, Sequence[str]] = DEFAULT_ON,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the measurements; return every figure (errors are recorded, not raised)."""
    errors: dict[str, str] = {}
    results: dict[str, Any] = {
        "targets": [t for t in TARGETS if t in targets and t in on["fanout"]],
        "fanout": [],
        "connections": {},
        "isolation": {},
        "recovery": {},
        "errors": errors,
    }
    if "fanout" in measurements:
        for rnd in range(rounds):
            this: dict[str, dict[str, Any]] = {}
            for name in results["targets"]:
                log(f"fan-out round {rnd + 1}/{rounds}: {name}")

                def job(target: Target) -> dict[str, Any]:
                    cells: dict[str, Any] = {}
                    for subs in plan.subscribers:
                        got = _attempt(
                            errors,
                            f"fanout {target.name} {subs}",
                            lambda s=subs: scenarios.fanout(target, s, plan),
                        )
                        if got is not None:
                            cells[str(subs)] = got
                            log(f"  {subs:>6} subs: {_brief(got)}")
                    return cells

                this[name] = _attempt(errors, f"fanout {name}", lambda n=name: _with_target(n, job))
                this[name] = this[name] or {}
            results["fanout"].append(this)
    for kind, fn in (
        ("connections", scenarios.connections),
        ("isolation", scenarios.isolation),
        ("recovery", scenarios.recovery),
    ):
        if kind not in measurements:
            continue
        for name in on[kind]:
            if name not in targets:
                continue
            log(f"{kind}: {name}")
            got = _attempt(
                errors, f"{kind} {name}", lambda n=name, f=fn: _with_target(n, lambda t: f(t, plan))
            )
            if got is not None:
                results[kind][name] = got
    return results


def _brief(cell: dict[str, Any]) -> str:
    fixed, flat, burst = cell["fixed"], cell["max"], cell["burst"]
    return (
        f"10/s P95 {fixed['p95_ms']} ms; flat out {flat['rate']:,}/s, "
        f"server {flat['server_cpu_us']} µs/delivery; bursts {burst['rate']:,}/s, "
        f"{burst['server_cpu_us']} µs/delivery; lost {fixed['lost'] + flat['lost'] + burst['lost']}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns 0 when every measurement ran (floors are reported, not fatal)."""
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="toy sizes, a few seconds a server")
    parser.add_argument("--rounds", type=int, default=1, help="fan-out rounds (spread)")
    parser.add_argument("--only", default=",".join(MEASUREMENTS), help="measurements to run")
    parser.add_argument("--targets", default=",".join(TARGETS), help="servers to measure")
    parser.add_argument("--subscribers", help="fan-out subscriber counts, e.g. 100,1000")
    parser.add_argument("--out", type=Path, help="folder for the JSON (default bench/results)")
    parser.add_argument(
        "--plots", type=Path, help="folder for the PNGs (default docs/assets/bench)"
    )
    parser.add_argument("--no-page", action="store_true", help="leave the docs page alone")
    args = parser.parse_args(argv)

    measurements = [m.strip() for m in args.only.split(",") if m.strip()]
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(measurements) - set(MEASUREMENTS)) + sorted(set(targets) - set(TARGETS))
    if unknown or args.rounds < 1:
        parser.error(
            f"unknown names {unknown} (measurements: {', '.join(MEASUREMENTS)}; servers: "
            f"{', '.join(TARGETS)}) or --rounds below 1"
        )
    plan = scenarios.SMOKE if args.smoke else scenarios.Plan()
    if args.subscribers:
        counts = tuple(int(n) for n in args.subscribers.split(","))
        plan = scenarios.Plan(**{**plan.__dict__, "subscribers": counts})
    raise_fd_limit()  # our server inherits this limit from us

    started = time.monotonic()
    on = SMOKE_ON if args.smoke else DEFAULT_ON
    results = run(plan, measurements, targets, args.rounds, on)
    results.update(
        {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python -m bench.fanout "
            + shlex.join(sys.argv[1:] if argv is None else argv),
            "machine": machine(),
            "plan": {**plan.__dict__, "rounds": args.rounds},
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    section = report.markdown(results)
    print("\n" + section)

    out = args.out or RESULTS
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for name in (f"fanout-{stamp}.json", "latest.json"):
        (out / name).write_text(json.dumps(results, indent=1) + "\n")
    plots = args.plots or (out if args.smoke else ASSETS)
    written = report.plot(results, plots)
    print(f"results: {out / 'latest.json'}; plots: {', '.join(str(p) for p in written)}")
    if not (args.smoke or args.no_page):
        PAGE.write_text(render_page(PAGE.read_text(), section))
        print(f"page: {PAGE}")
    print(f"took {results['seconds']} s")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
