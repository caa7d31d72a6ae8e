#!/usr/bin/env python
"""Benchmark: what does the policy scheduler add to a job?

Run by hand, never by pytest::

    python tests/benchmarks/scheduler.py [--fires N] [--every S]

It makes a temporary project with a tiny notebook whose first cell appends ``time.time()`` to
a file (the kernel is up and running the notebook then), starts a real embedded platform
(``mlflow server``) with a champion for the notebook's instance, writes a policy whose batch
job runs that notebook every S seconds (default 10; a six-field cron with seconds), starts the
scheduler the way ``workbench platform up`` does, and lets it fire N times (default 5).

For each fire, the **delay** is the time from the fire's due time (the scheduled time recorded
in the history) to the notebook's first cell; the **total** runs to the end of the job's run
(its MLflow ``end_time``). Then it runs the same notebook N times as a manual ``workbench run``
(a fresh process each, as a user types it), from the moment the command starts. The scheduler's
**overhead per fire** is the difference of the medians (target: under 0.3 s). The markdown
table goes to stdout, progress to stderr.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

# This folder holds packaging.py (a benchmark), which would shadow the `packaging` library
# MLflow imports: take the folder off the path once the shared helper is in.
_HERE = Path(__file__).resolve().parent
from _proc import say  # noqa: E402

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.modules.pop("packaging", None)
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # stdout: the table

TARGET_S = 0.3


def notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    first = nbformat.v4.new_code_cell(
        'model_ref = ""\ninput_path = ""\noutput_path = ""\ncurrent_path = ""\nstamps = ""')
    first.metadata["tags"] = ["parameters"]
    nb.cells = [first, nbformat.v4.new_code_cell(
        "import time\nwith open(stamps, 'a') as f:\n    f.write(f'{time.time()}\\n')")]
    nbformat.write(nb, str(path))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fires", type=int, default=5)
    parser.add_argument("--every", type=int, default=10, help="seconds between fires")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from workbench import tracking
    from workbench.config import Settings
    from workbench.naming import ModelName
    from workbench.platforms import EmbeddedPlatform
    from workbench.platforms.embedded import free_port
    from workbench.policy.scheduler import history
    from workbench.registry import Registry

    root = Path(tempfile.mkdtemp(prefix="workbench-bench-scheduler-"))
    (root / "notebooks").mkdir()
    (root / "policies").mkdir()
    notebook(root / "notebooks" / "stamp.ipynb")
    settings = Settings.from_env(environ={}, cwd=root, home=str(root / ".workbench"),
                                 port=free_port())
    platform = EmbeddedPlatform(settings, workers=1)
    scheduled, manual = root / "scheduled.txt", root / "manual.txt"
    try:
        say("starting the platform")
        EmbeddedPlatform(settings, workers=1, scheduler=False).up()
        registry = Registry(settings)
        X = pd.DataFrame({"a": np.arange(40.0)})
        name = ModelName("bench", "v1", "20240131")
        run_id = tracking.start_run(registry.client, "bench", str(name), {})
        registry.register(LogisticRegression().fit(X, X.a > 20), name, run_id=run_id,
                          input_example=X)
        registry.client.set_terminated(run_id)
        registry.promote(str(name), "champion", reason="benchmark")

        (root / "policies" / "bench.yaml").write_text(
            "instance: bench\n"
            "data: {path: 'data/bench_{data_date}.csv', label_column: y}\n"
            f"schedules: {{batch: {{cron: '*/{args.every} * * * * *'}}}}\n"
            f"batch: {{notebook: notebooks/stamp.ipynb, parameters: {{stamps: '{scheduled}'}}}}\n")
        say(f"starting the scheduler; {args.fires} fires every {args.every} s")
        platform.up()
        deadline = time.monotonic() + args.fires * args.every * 3 + 60
        while time.monotonic() < deadline:
            done = [e for e in history(settings, "bench.batch", 500) if e.event == "finished"]
            if len(done) >= args.fires + 1:  # the first fire warms the process up
                break
            time.sleep(1)
        platform.down()  # nothing else runs while the manual jobs are timed
        entries = history(settings, "bench.batch", 500)
        finished = [e for e in entries if e.event == "finished"][1:args.fires + 1]
        stamps = [float(line) for line in scheduled.read_text().split()][1:args.fires + 1]
        due = [dt.datetime.fromisoformat(e.scheduled_for).timestamp() for e in finished]
        EmbeddedPlatform(settings, workers=1, scheduler=False).up()
        client = Registry(settings).client
        ends = [client.get_run(e.run_ids[0]).info.end_time / 1000 for e in finished]
        sched_delay = [s - d for s, d in zip(stamps, due)]
        sched_total = [e - d for e, d in zip(ends, due)]

        env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "MLFLOW_"))}
        env.update(settings.as_env(), WORKBENCH_PORT=str(settings.port))
        manual_delay, manual_total = [], []
        for n in range(args.fires):
            say(f"manual workbench run {n + 1}/{args.fires}")
            started = time.time()
            subprocess.run([sys.executable, "-m", "workbench.cli", "run",
                            str(root / "notebooks" / "stamp.ipynb"), "-p", "stamps", str(manual)],
                           check=True, capture_output=True, env=env, cwd=root)
            manual_total.append(time.time() - started)
            manual_delay.append(float(manual.read_text().split()[-1]) - started)
        # The same job started warm in this process: what the scheduler itself adds.
        from workbench.jobs import JobSpec, run_job

        warm_delay, warm_total = [], []
        for n in range(args.fires + 1):
            say(f"run_job in this process {n + 1}/{args.fires + 1}")
            started = time.time()
            run_job(JobSpec(root / "notebooks" / "stamp.ipynb", {"stamps": str(manual)}),
                    settings)
            if n:  # the first one imports papermill and the kernel machinery
                warm_total.append(time.time() - started)
                warm_delay.append(float(manual.read_text().split()[-1]) - started)
    finally:
        platform.down()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    def cell(values: list[float]) -> str:
        return f"{med(values):.2f} s ({min(values):.2f}-{max(values):.2f})"

    overhead = med(sched_delay) - med(manual_delay)
    print(f"Scheduler benchmark: {args.fires} fires every {args.every} s (after one warm-up fire), "
          f"{args.fires} manual runs, {args.fires} warm run_job calls; medians (min-max)\n")
    print("| | scheduled fire (from due time) | manual `workbench run` (from command start) | "
          "`run_job` in a warm process (from the call) | scheduled - manual | "
          "scheduled - warm |")
    print("|---|---|---|---|---|---|")
    for label, a, b, c in (
            ("to the kernel running the first cell", sched_delay, manual_delay, warm_delay),
            ("to the end of the job's run", sched_total, manual_total, warm_total)):
        print(f"| {label} | {cell(a)} | {cell(b)} | {cell(c)} | {med(a) - med(b):+.2f} s | "
              f"{med(a) - med(c):+.2f} s |")
    verdict = "PASS" if overhead < TARGET_S else "FAIL"
    print(f"\n{verdict}: the scheduler's overhead per fire over a manual run is {overhead:+.2f} s "
          f"(target < {TARGET_S} s); over the same job started warm: "
          f"{med(sched_delay) - med(warm_delay):+.2f} s (its own wake-up, thread and history)")
    print(json.dumps({"scheduled_delay": sched_delay, "manual_delay": manual_delay}),
          file=sys.stderr)
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
