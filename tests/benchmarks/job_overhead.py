#!/usr/bin/env python
"""Benchmark: how much does running a notebook as a workbench job cost on top of papermill?

Run by hand, never by pytest (the file name does not start with ``test_`` and it defines no
test functions)::

    python tests/benchmarks/job_overhead.py [--repeat N]

In one run on this machine it builds a tiny parameterized notebook and the same code as a
plain script in a temporary directory, starts a real embedded platform (an ``mlflow server``
process, stopped again on the way out) and times, after one warm-up round, N rounds of:

* cold, each a fresh interpreter: ``python script.py``, the papermill CLI, ``workbench run``;
* warm, in this process: ``papermill.execute_notebook`` and ``workbench.jobs.run_job``
  (each still starts a fresh kernel, as papermill always does);
* import cost alone: ``python -c "import papermill"`` / ``"import workbench.cli"`` /
  ``"import mlflow"``, against ``python -c pass``.

The variants alternate inside each round (and the order rotates from round to round) so
that drift in machine load spreads over all of them. The markdown table goes to stdout,
progress to stderr. Workbench's own additions are the two differences ``workbench run`` -
papermill CLI (cold) and ``run_job`` - ``papermill.execute_notebook`` (warm); the target is
under 0.5 s each.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from _proc import say, wait_until_quiet

BUDGET_S = 0.5
PARAMETERS_SOURCE = "n = 10"
CODE_SOURCE = "total = sum(range(n)); print(total)"
EXPECTED_OUTPUT = "45"


@dataclass
class Variant:
    key: str
    label: str
    action: Callable[[], None]
    anchor: str | None = None  # key of the variant this one is compared with
    times: list[float] = field(default_factory=list)


def write_inputs(folder: Path) -> tuple[Path, Path]:
    """The tiny notebook (a ``parameters`` cell and one code cell) and the same code as a script."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    parameters = nbformat.v4.new_code_cell(PARAMETERS_SOURCE)
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell(CODE_SOURCE)]
    notebook = folder / "tiny.ipynb"
    nbformat.write(nb, str(notebook))
    script = folder / "tiny.py"
    script.write_text(f"{PARAMETERS_SOURCE}\n{CODE_SOURCE}\n")
    return notebook, script


def child_env(settings) -> dict[str, str]:
    """This environment without workbench/MLflow settings, pointed at the benchmark platform."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WORKBENCH_", "MLFLOW_"))}
    env.update({
        "WORKBENCH_HOME": str(settings.home),
        "WORKBENCH_PROJECT_ROOT": str(settings.project_root),
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
    })
    return env


def command(argv: list[str], env: dict[str, str], cwd: Path) -> Callable[[], None]:
    def run() -> None:
        done = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"{' '.join(argv)} exited with {done.returncode}:\n{tail}")
    return run


def build_variants(folder: Path, notebook: Path, script: Path, settings) -> list[Variant]:
    import papermill

    from workbench.jobs import JobSpec, run_job

    python, env = sys.executable, child_env(settings)
    cli_out = folder / "out_cli.ipynb"
    warm_out = folder / "out_warm.ipynb"

    def papermill_warm() -> None:
        papermill.execute_notebook(str(notebook), str(warm_out), parameters={"n": 10},
                                   progress_bar=False, cwd=str(folder))

    def run_job_warm() -> None:
        run_job(JobSpec(notebook, {"n": 10}), settings)

    return [
        Variant("script", "`python script.py` (cold)",
                command([python, str(script)], env, folder)),
        Variant("pm_cli", "`papermill nb out -p n 10` (cold)",
                command([python, "-m", "papermill", str(notebook), str(cli_out), "-p", "n", "10"],
                        env, folder)),
        Variant("wb_cli", "`workbench run nb -p n 10` (cold)",
                command([python, "-m", "workbench.cli", "run", str(notebook), "-p", "n", "10"],
                        env, folder),
                anchor="pm_cli"),
        Variant("pm_warm", "`papermill.execute_notebook` (warm, in-process)", papermill_warm),
        Variant("wb_warm", "`run_job` (warm, in-process)", run_job_warm, anchor="pm_warm"),
        Variant("py", "`python -c pass`", command([python, "-c", "pass"], env, folder)),
        Variant("imp_pm", "`python -c \"import papermill\"`",
                command([python, "-c", "import papermill"], env, folder), anchor="py"),
        Variant("imp_wb", "`python -c \"import workbench.cli\"`",
                command([python, "-c", "import workbench.cli"], env, folder), anchor="py"),
        Variant("imp_mlflow", "`python -c \"import mlflow\"`",
                command([python, "-c", "import mlflow"], env, folder), anchor="py"),
    ]


def check_outputs(folder: Path, settings) -> None:
    """After the warm-up: every notebook variant really ran the code and printed 45."""
    job_outputs = sorted((settings.jobs_dir / "tiny").glob("*.ipynb"))
    outputs = [folder / "out_cli.ipynb", folder / "out_warm.ipynb", *job_outputs[-1:]]
    if not job_outputs:
        raise RuntimeError(f"no job output notebook under {settings.jobs_dir}")
    for path in outputs:
        cell = nbformat.read(str(path), as_version=4).cells[-1]
        text = "".join(o.get("text", "") for o in cell.get("outputs", []))
        if text.strip() != EXPECTED_OUTPUT:
            raise RuntimeError(f"{path}: last cell printed {text!r}, expected {EXPECTED_OUTPUT!r}")


def measure(variants: list[Variant], repeat: int, folder: Path, settings) -> None:
    for round_no in range(repeat + 1):
        warmup = round_no == 0
        name = "warm-up" if warmup else f"round {round_no}/{repeat}"
        shift = round_no % len(variants)
        for variant in variants[shift:] + variants[:shift]:
            started = time.perf_counter()
            variant.action()
            elapsed = time.perf_counter() - started
            if not warmup:
                variant.times.append(elapsed)
            say(f"[{name}] {variant.label}: {elapsed:.3f} s")
        if warmup:
            check_outputs(folder, settings)


def report(variants: list[Variant], repeat: int) -> tuple[str, bool]:
    by_key = {v.key: v for v in variants}
    median = {v.key: statistics.median(v.times) for v in variants}
    low = {v.key: min(v.times) for v in variants}
    lines = [
        "| variant | median s | min s | median - anchor s | min - anchor s |",
        "|---|---:|---:|---|---:|",
    ]
    anchors = {v.anchor for v in variants if v.anchor}
    for v in variants:
        if v.anchor:
            diff = f"{median[v.key] - median[v.anchor]:+.3f} vs {by_key[v.anchor].label}"
            diff_min = f"{low[v.key] - low[v.anchor]:+.3f}"
        else:
            diff, diff_min = ("(anchor)" if v.key in anchors else ""), ""
        lines.append(
            f"| {v.label} | {median[v.key]:.3f} | {low[v.key]:.3f} | {diff} | {diff_min} |")
    cold = median["wb_cli"] - median["pm_cli"]
    warm = median["wb_warm"] - median["pm_warm"]
    ok = cold < BUDGET_S and warm < BUDGET_S
    lines += [
        "",
        f"Workbench's own additions (medians of {repeat}): cold `workbench run` - papermill CLI "
        f"= {cold:+.3f} s (min-based {low['wb_cli'] - low['pm_cli']:+.3f} s); warm `run_job` - "
        f"`papermill.execute_notebook` = {warm:+.3f} s (min-based "
        f"{low['wb_warm'] - low['pm_warm']:+.3f} s). "
        f"Both under {BUDGET_S} s: {'YES' if ok else 'NO'}.",
    ]
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5,
                        help="timed rounds after one warm-up (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    from workbench.config import Settings
    from workbench.platforms import EmbeddedPlatform
    from workbench.pytest_plugin import free_port

    begun = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="workbench-bench-")).resolve()
    platform = None
    try:
        notebook, script = write_inputs(folder)
        settings = Settings.from_env(environ={}, cwd=folder, home=str(folder / ".workbench"),
                                     port=free_port())
        platform = EmbeddedPlatform(settings, workers=1)
        say(f"benchmark directory: {folder}")
        status = platform.up(say)
        wait_until_quiet([status.pid])
        load_before = os.getloadavg()[0]
        variants = build_variants(folder, notebook, script, settings)
        # MLflow prints "View run ..." links on stdout; keep stdout for the table.
        with contextlib.redirect_stdout(sys.stderr):
            measure(variants, args.repeat, folder, settings)
        load_after = os.getloadavg()[0]
        table, _ = report(variants, args.repeat)
    finally:
        if platform is not None:
            platform.down(say)
        if args.keep:
            say(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"\nJob overhead on {os.uname().nodename} ({os.cpu_count()} CPUs, 1-min load average "
          f"{load_before:.1f} before, {load_after:.1f} after), Python {sys.version.split()[0]}, "
          f"{args.repeat} rounds after one warm-up:\n")
    print(table)
    say(f"total benchmark time: {time.perf_counter() - begun:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
