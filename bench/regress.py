"""`python -m bench.regress [--smoke N | RESULTS.json ...] [--record]`: has the bench regressed?

Compares the ratios of one `python -m bench.fanout --smoke` run with the last recorded
run (`bench/baselines/smoke.json`, committed, written by `--record`). Only ratios are
compared, each between two servers measured in the same run on the same machine, so a
slower or busier machine moves both sides and cancels out: our server's CPU per delivered
update and its throughput flat out, each against bare `websockets` and bare FastAPI, at
the smoke's subscriber count. A ratio that got worse by more than `TOLERANCE` (25 %) is
a regression; exit status 1 lists each with both values.

Smoke runs are short and noisy, so `--smoke N` runs the smoke bench itself up to N times,
stopping as soon as the median of the runs so far shows no regression: a regression has to
hold in the median to count. Run it on a quiet machine: beside other work on two cores,
single smoke runs moved by up to 50 %, which is why the test suite does not gate on it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["BASELINE", "TOLERANCE", "Figure", "compare", "figures", "main"]

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "bench" / "baselines" / "smoke.json"
"""The last recorded smoke run's ratios (committed; `--record` rewrites it)."""
TOLERANCE = 0.25
"""How much worse than the recorded ratio a figure may get before it is a regression."""

Figure = tuple[str, str, str, bool]
"""A compared ratio: (name, measured key, baseline server, lower is better)."""

_FIGURES: tuple[Figure, ...] = (
    ("CPU per delivery vs bare websockets", "server_cpu_us", "bare-websockets", True),
    ("CPU per delivery vs bare FastAPI", "server_cpu_us", "bare-fastapi", True),
    ("throughput vs bare websockets", "rate", "bare-websockets", False),
    ("throughput vs bare FastAPI", "rate", "bare-fastapi", False),
)


def figures(results: dict[str, Any], target: str = "ours") -> dict[str, float]:
    """The compared ratios of one bench run (`latest.json`'s content), median over rounds.

    Args:
        results: what `bench.fanout` wrote.
        target: the server whose ratios are compared.

    Returns:
        Figure name to ratio (`target`'s value / the baseline server's, flat-out cells);
        a figure the run could not measure is left out.
    """
    out: dict[str, float] = {}
    for name, key, base, _ in _FIGURES:
        ratios = []
        for round_cells in results.get("fanout", []):
            for subs, cell in round_cells.get(target, {}).items():
                other = round_cells.get(base, {}).get(subs)
                a = cell.get("max", {}).get(key)
                b = (other or {}).get("max", {}).get(key)
                if a and b:
                    ratios.append(a / b)
        if ratios:
            out[name] = statistics.median(ratios)
    return out


def compare(
    measured: dict[str, float], recorded: dict[str, float], tolerance: float = TOLERANCE
) -> list[str]:
    """The regressions of `measured` against `recorded`, one sentence each (empty: none).

    Args:
        measured: figure name to ratio, from `figures`.
        recorded: the same, from the last recorded run.
        tolerance: fraction by which a ratio may get worse (0.25 = 25 %).

    Returns:
        One line per figure that got worse by more than `tolerance`, or that the last
        recorded run had and this one could not measure.
    """
    lower_better = {name: lower for name, _, _, lower in _FIGURES}
    found = []
    for name, before in sorted(recorded.items()):
        now = measured.get(name)
        if now is None:
            found.append(f"{name}: recorded {before:.2f}, not measured now")
            continue
        worse = now / before - 1 if lower_better.get(name, True) else before / now - 1
        if worse > tolerance:
            found.append(f"{name}: {now:.2f} now, {before:.2f} recorded ({worse:+.0%} worse)")
    return found


def _median_of(runs: Sequence[dict[str, float]]) -> dict[str, float]:
    names = set().union(*runs) if runs else set()
    return {n: statistics.median(r[n] for r in runs if n in r) for n in names}


#: Longest one smoke run may take, in seconds (30-70 s here).
SMOKE_TIMEOUT_SECONDS = 300


def smoke_run(out: Path) -> dict[str, float]:
    """Run `python -m bench.fanout --smoke --out OUT` and return its figures.

    Raises:
        RuntimeError: the smoke run failed (its output's tail is in the message).
    """
    done = subprocess.run(
        [sys.executable, "-m", "bench.fanout", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the smoke run failed:\n{(done.stdout + done.stderr)[-2000:]}")
    return figures(json.loads((out / "latest.json").read_text(encoding="utf-8")))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: compare smoke results with the record, or `--record` them."""
    parser = argparse.ArgumentParser(prog="python -m bench.regress", description=__doc__)
    parser.add_argument("results", nargs="*", type=Path, help="latest.json of smoke runs")
    parser.add_argument("--smoke", type=int, metavar="N", help="run the smoke bench, up to N times")
    parser.add_argument("--record", action="store_true", help="record these as the baseline")
    parser.add_argument("--baseline", type=Path, default=BASELINE, help="the record's path")
    args = parser.parse_args(argv)
    if bool(args.smoke) == bool(args.results):
        parser.error("give either RESULTS.json files or --smoke N")
    runs = [figures(json.loads(p.read_text(encoding="utf-8"))) for p in args.results]
    if args.smoke:
        recorded_figures: dict[str, float] = {}
        if args.baseline.is_file() and not args.record:
            recorded_figures = json.loads(args.baseline.read_text(encoding="utf-8"))["figures"]
        with tempfile.TemporaryDirectory(prefix="hive-regress-") as tmp:
            for index in range(args.smoke):
                runs.append(smoke_run(Path(tmp) / str(index)))
                print(
                    f"smoke run {index + 1}: "
                    + ", ".join(f"{n} {v:.2f}" for n, v in sorted(runs[-1].items())),
                    flush=True,
                )
                if recorded_figures and not compare(_median_of(runs), recorded_figures):
                    break
    measured = _median_of(runs)
    if args.record:
        args.baseline.parent.mkdir(parents=True, exist_ok=True)
        record = {"runs": len(runs), "tolerance": TOLERANCE, "figures": measured}
        args.baseline.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        print(f"recorded {len(measured)} figures (median of {len(runs)} runs) in {args.baseline}")
        return 0
    if not args.baseline.is_file():
        parser.error(f"{args.baseline} is missing: record one with --record")
    recorded = json.loads(args.baseline.read_text(encoding="utf-8"))["figures"]
    for name in sorted(measured):
        before = recorded.get(name)
        shown = f"{before:.2f}" if before is not None else "-"
        print(f"{name}: {measured[name]:.2f} (recorded {shown})")
    regressions = compare(measured, recorded)
    for line in regressions:
        print(f"REGRESSION {line}")
    return 1 if regressions else 0


if __name__ == "__main__":
    raise SystemExit(main())
