"""Drift check speed: workbench's ``check_drift`` against Evidently's DataDriftPreset.

Run by hand: ``python tests/benchmarks/drift.py [--rows N] [--evidently-python PATH]``.

One run builds a synthetic reference table and a current table (``--rows`` rows each, default
1,000,000; 20 features: 15 numeric, some with ties and missing values, and 5 categorical;
fixed seeds; drift planted in the columns of ``PLANTED``) and writes both to Parquet files in
a temporary directory. Both tools then read those two files:

- workbench, in this process: the profile is built from the reference once and sent through
  JSON, as it is stored with a model version (timed on its own, not part of the check); the
  timed part is ``check_drift`` over the current table (with the model's predictions as a
  21st check), three times, best and median reported;
- Evidently 0.7, in a subprocess of its own environment (never a dependency of the package):
  ``Report([DataDriftPreset()], include_tests=True).run(current, reference)``, timed once.
  Create that environment with::

      python -m venv /tmp/evenv
      /tmp/evenv/bin/pip install 'evidently==0.7.23' 'pandas<3' scipy

  (Evidently's imports break on pandas 3). Without it the Evidently part is skipped.

Progress goes to stderr; the markdown table and the PASS/FAIL lines go to stdout. The issue's
targets: the check under 2 s, at least 10x faster than Evidently, and both tools flagging the
same drifted columns. The GUIDE's anchor on this machine: DataDriftPreset on 1,000,000 rows x
20 features takes 88 s.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _proc import say

from workbench.monitoring.drift import DRIFT, check_drift
from workbench.monitoring.profile import ReferenceProfile, build_profile

DEFAULT_EVIDENTLY_PYTHON = "/tmp/evenv/bin/python"
NUMERIC, CATEGORICAL, LEVELS = 15, 5, 12
# The planted drift, each far beyond sampling noise at these sizes: a mean shift of half a
# standard deviation (num0 has ties and missing values, num12 missing values), a doubled
# spread (num9), two levels that disappear (cat0) and one level that takes 30% of the rows
# (cat3). Every other column has the same distribution in both tables.
SHIFTED, WIDENED = (0, 3, 6, 12), (9,)
PLANTED = tuple(sorted([f"num{i}" for i in SHIFTED + WIDENED] + ["cat0", "cat3"]))

# Runs in the Evidently environment: argv[1] and argv[2] are the reference and current
# Parquet files. Only Report.run is timed; the per-column flags are the ValueDrift tests
# that failed (Evidently's own drift decision, whatever stattest it picked for the column).
EVIDENTLY_SNIPPET = r"""
import json, sys, time
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset

reference = pd.read_parquet(sys.argv[1])
current = pd.read_parquet(sys.argv[2])
report = Report([DataDriftPreset()], include_tests=True)
started = time.perf_counter()
snapshot = report.run(current, reference)
seconds = time.perf_counter() - started
result = snapshot.dict()
methods = {}
for metric in result["metrics"]:
    config = metric.get("config", {})
    if config.get("type", "").endswith(":ValueDrift"):
        methods[config["column"]] = f"{config.get('method')} >= {config.get('threshold')}"
drifted = []
for test in result["tests"]:
    params = test.get("metric_config", {}).get("params", {})
    if params.get("type", "").endswith(":ValueDrift") and test.get("status") == "FAIL":
        drifted.append(params["column"])
import evidently
print(json.dumps({"seconds": seconds, "drifted": sorted(drifted), "methods": methods,
                  "version": evidently.__version__, "pandas": pd.__version__}))
"""


def frame(rows: int, seed: int, drifted: bool) -> pd.DataFrame:
    """The synthetic table: the reference with ``drifted=False``, the current with True."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for i in range(NUMERIC):
        scale = 1.0 + i / 10
        mean = 0.5 * scale if drifted and i in SHIFTED else 0.0
        if drifted and i in WIDENED:
            scale *= 2.0
        values = rng.normal(mean, scale, rows)
        if i % 5 == 0:
            values = np.round(values * 10)  # some discrete columns: ties
        if i % 4 == 0:
            values[rng.random(rows) < 0.02] = np.nan
        columns[f"num{i}"] = values
    levels = np.array([f"level{j}" for j in range(LEVELS)], dtype=object)
    for i in range(CATEGORICAL):
        codes = rng.integers(0, LEVELS - 2 if drifted and i == 0 else LEVELS, rows)
        if drifted and i == 3:
            codes[rng.random(rows) < 0.3] = 0
        columns[f"cat{i}"] = levels[codes]
    return pd.DataFrame(columns)


def predict(table: pd.DataFrame) -> np.ndarray:
    """A stand-in model's predictions (num1 does not drift, so neither do they)."""
    return (table["num1"] > 0).astype(int).to_numpy()


def run_evidently(python: str, reference: Path, current: Path) -> dict | None:
    """Evidently's seconds and flagged columns, or None (with the reason said) when it failed."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["DO_NOT_TRACK"] = "1"  # Evidently's usage telemetry
    started = time.perf_counter()
    done = subprocess.run([python, "-c", EVIDENTLY_SNIPPET, str(reference), str(current)],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        say(f"Evidently failed (exit {done.returncode}); last lines of its stderr:")
        for line in done.stderr.strip().splitlines()[-15:]:
            say(f"  {line}")
        return None
    result = json.loads(lines[-1])
    result["wall"] = wall
    return result


def names(columns: list[str] | tuple[str, ...]) -> str:
    """Column names in natural order (num2 before num10), comma-separated."""
    def key(name: str) -> tuple[str, int]:
        stem = name.rstrip("0123456789")
        return stem, int(name[len(stem):] or -1)
    return ", ".join(sorted(columns, key=key)) if columns else "none"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="rows in each table (default 1,000,000)")
    parser.add_argument("--evidently-python", default=DEFAULT_EVIDENTLY_PYTHON,
                        help=f"python of the Evidently environment (default "
                             f"{DEFAULT_EVIDENTLY_PYTHON})")
    parser.add_argument("--repeat", type=int, default=3, help="check_drift runs (default 3)")
    args = parser.parse_args()
    if args.rows < 1000 or args.repeat < 1:
        parser.error("--rows must be at least 1000 and --repeat at least 1")

    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        reference_path, current_path = Path(tmp, "reference.parquet"), Path(tmp, "current.parquet")
        say(f"building {args.rows:,} reference and {args.rows:,} current rows x "
            f"{NUMERIC + CATEGORICAL} features; planted drift in {names(PLANTED)}")
        frame(args.rows, 1, drifted=False).to_parquet(reference_path, index=False)
        frame(args.rows, 2, drifted=True).to_parquet(current_path, index=False)

        # workbench reads the same files Evidently will.
        reference = pd.read_parquet(reference_path)
        started = time.perf_counter()
        current = pd.read_parquet(current_path)
        read_current = time.perf_counter() - started
        started = time.perf_counter()
        profile_json = build_profile(reference, predict(reference)).to_json()
        build_seconds = time.perf_counter() - started
        started = time.perf_counter()
        profile = ReferenceProfile.from_json(profile_json)
        load_seconds = time.perf_counter() - started
        say(f"profile of {len(reference):,} reference rows: built in {build_seconds:.2f} s, "
            f"{len(profile_json) / 1024:.0f} KiB of JSON, loaded in {load_seconds:.3f} s")
        del reference
        current_predictions = predict(current)
        timings = []
        for attempt in range(args.repeat):
            started = time.perf_counter()
            result = check_drift(profile, current, current_predictions)
            timings.append(time.perf_counter() - started)
            say(f"check_drift run {attempt + 1}: {timings[-1]:.2f} s")
        say(result.summary_line())
        best, median = min(timings), statistics.median(timings)
        ours = sorted(result.drifted)
        del current

        evidently = None
        python = Path(args.evidently_python)
        if not python.exists():
            say(f"no Evidently environment at {python}; skipping Evidently. Create it with: "
                f"python -m venv {python.parent.parent} && {python.parent}/pip install "
                "'evidently==0.7.23' 'pandas<3' scipy")
        else:
            say(f"running Evidently's DataDriftPreset with {python} (about 90 s at 1,000,000 "
                "rows)")
            evidently = run_evidently(str(python), reference_path, current_path)
            if evidently is not None:
                say(f"Evidently {evidently['version']} (pandas {evidently['pandas']}): "
                    f"Report.run {evidently['seconds']:.1f} s, subprocess "
                    f"{evidently['wall']:.1f} s in all (start-up and reading included)")
                by_method: dict[str, list[str]] = {}
                for column, method in evidently["methods"].items():
                    by_method.setdefault(method, []).append(column)
                for method, columns in by_method.items():
                    say(f"  Evidently's drift rule {method}: {names(columns)}")

    theirs = sorted(evidently["drifted"]) if evidently else None

    def ratio(seconds: float) -> str:
        return f"{evidently['seconds'] / seconds:.0f}x" if evidently else "n/a"

    print(f"Drift check, {args.rows:,} reference and {args.rows:,} current rows x "
          f"{NUMERIC + CATEGORICAL} features ({NUMERIC} numeric, {CATEGORICAL} categorical); "
          f"planted drift: {names(PLANTED)}\n")
    print("| tool | seconds | ratio (Evidently / tool) | drifted columns flagged |")
    print("|---|---|---|---|")
    print(f"| workbench `check_drift`, current table vs stored profile (best / median of "
          f"{args.repeat}) | {best:.2f} / {median:.2f} | {ratio(best)} / {ratio(median)} "
          f"| {names(ours)} |")
    print(f"| workbench `build_profile` of the reference (once per model version, not part of "
          f"the check) + `check_drift` median | {build_seconds:.2f} + {median:.2f} "
          f"| {ratio(build_seconds + median)} | {names(ours)} |")
    if evidently:
        print(f"| Evidently {evidently['version']} `DataDriftPreset`, "
              f"`Report.run(current, reference)` (once) | {evidently['seconds']:.1f} | 1x "
              f"| {names(theirs)} |")
    else:
        print("| Evidently `DataDriftPreset` | skipped | n/a | n/a |")
    print()
    print(f"Not timed for either tool: reading the current Parquet file ({read_current:.2f} s "
          f"here). Loading the profile from JSON: {load_seconds:.3f} s.")
    print(f"- whole check under 2 s: {'PASS' if median < 2.0 else 'FAIL'} "
          f"(check_drift median {median:.2f} s; worst {max(timings):.2f} s, run "
          f"{timings.index(max(timings)) + 1} of {args.repeat}; the first also imports scipy)")
    if evidently:
        faster = evidently["seconds"] / median
        print(f"- >= 10x faster than Evidently: {'PASS' if faster >= 10 else 'FAIL'} "
              f"({faster:.0f}x on the median; {evidently['seconds'] / (build_seconds + median):.0f}x "
              "even with the profile built in the same run)")
        only_ours = sorted(set(ours) - set(theirs))
        only_theirs = sorted(set(theirs) - set(ours))
        same = not only_ours and not only_theirs
        print(f"- same drifted columns: {'yes' if same else 'no'}"
              + ("" if same else f" (only workbench: {names(only_ours)}; "
                                 f"only Evidently: {names(only_theirs)})"))
    else:
        print("- >= 10x faster than Evidently: n/a (Evidently skipped)")
        print("- same drifted columns: n/a (Evidently skipped)")
    for tool, flagged in (("workbench", ours), ("Evidently", theirs)):
        if flagged is not None:
            missed = sorted(set(PLANTED) - set(flagged))
            extra = sorted(set(flagged) - set(PLANTED))
            print(f"- {tool} flags exactly the planted columns: "
                  + ("yes" if not missed and not extra
                     else f"no (missed: {names(missed)}; extra: {names(extra)})"))
    if result.warned:
        print(f"- workbench warned (not drift) on: {names(sorted(result.warned))}")
    if result.prediction is not None and result.prediction.status == DRIFT:
        print("- workbench: the predictions drifted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
