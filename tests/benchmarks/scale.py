"""Beyond one machine: batch scoring and drift checks at 1M, 10M and 30M rows.

Run by hand: ``python tests/benchmarks/scale.py [--rows 1000000,10000000] [--only ...]``.

For each size the script writes churn-like Parquet data (the demo's May, after its drift,
generated a million rows at a time with a new seed each, into one file of 1M-row row groups)
and measures, each in a fresh process whose whole process tree's RSS is sampled every 0.2 s:

- ``today``: the path ``workbench predict`` had before the streaming engine: the whole file
  read with pandas, scored in one call, written (``read_table`` + ``LoadedModel.predict`` +
  ``write_table``);
- ``streaming``: the streaming local engine (``predict_file``, 500,000-row batches);
- ``spark-local``: ``predict_spark`` on ``local[2]``;
- ``spark-cluster``: ``predict_spark`` on a standalone cluster (one worker, 2 cores, started
  here from pyspark's ``spark-class``; its master, worker and executor count in the RSS);
- the drift check of the streaming engine's output (which has the predictions) against the
  model's reference profile: ``drift-pandas`` (``check_model_drift``) and ``drift-spark``
  (``--engine spark`` on ``local[2]``), reports written, not logged.

The model is the demo's champion configuration (ColumnTransformer + HistGradientBoosting)
fitted on 5,000 rows of January and registered on a temporary embedded platform. Rows per
second count the whole command (the session's start and the model's loading too); the Spark
rows also give the Spark job alone (from the engine's "scoring with" or "counting" line), and
every row the machine's load average when it ended (the machine may be shared). Progress
goes to stderr, the markdown table and the PASS/FAIL lines of the issue's targets to stdout:
the streaming engine's peak RSS flat with size (under 2 GB at 30M rows), its throughput no
worse than today's; Spark within 1.5x of the streaming engine's rows per second; the Spark
drift check on 30M rows under 60 s. ``today`` and ``drift-pandas`` hold the whole table in
memory; ``--skip-in-memory-above N`` (default 10M) leaves them out at larger sizes.
``--synthetic-predictions`` (without ``streaming``) gives the drift checks May's data with a
synthetic 0/1 ``prediction`` column instead of the streaming engine's output.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# This folder's packaging.py would shadow the library MLflow imports: its modules go last.
sys.path[:] = ([p for p in sys.path if Path(p or ".").resolve() != HERE]
               + [str(HERE), str(HERE.parents[1] / "tests" / "integration")])

from _proc import say  # noqa: E402

ENGINES = ("today", "streaming", "spark-local", "spark-cluster", "drift-pandas", "drift-spark")
CHUNK = 1_000_000


# -- one measurement, in a process of its own ----------------------------------------------------
def measure(mode: str, data: str, out: str, ref: str, master: str) -> dict[str, Any]:
    from workbench.config import Settings
    from workbench.registry import Registry

    marks: dict[str, float] = {}

    def mark(line: str) -> None:
        # The Spark job's own time: from the "scoring with" / "counting" line (the session
        # started, the model or profile loaded, first rows checked on the driver) to the end.
        if line.startswith(("scoring with", "counting ")):
            marks.setdefault("job", time.perf_counter())

    settings = Settings.from_env()
    registry = Registry(settings)
    started = time.perf_counter()
    if mode == "today":
        from workbench.predict import LoadedModel, read_table, write_table

        frame = read_table(Path(data))
        model = LoadedModel(registry.resolve(ref), settings)
        write_table(model.predict(frame), Path(out))
        rows = len(frame)
    elif mode == "streaming":
        from workbench.predict import predict_file

        rows = predict_file(ref, data, out, settings, registry).rows
    elif mode.startswith("spark"):
        from workbench.engines.spark import predict_spark

        rows = predict_spark(ref, data, out, settings, registry, master=master,
                             progress=mark).rows
        ended = time.perf_counter()
        return {"seconds": ended - started, "rows": rows,
                "job_seconds": ended - marks.get("job", started)}
    else:
        from workbench.monitoring.service import check_model_drift

        check = check_model_drift(ref, settings, current=data, log=False,
                                  report_dir=Path(out),
                                  engine="spark" if mode == "drift-spark" else "local",
                                  master=master, progress=mark)
        ended = time.perf_counter()
        rows = check.result.current_rows
        return {"seconds": ended - started, "rows": rows, "verdict": check.result.verdict,
                **({"job_seconds": ended - marks["job"]}
                   if "job" in marks and mode == "drift-spark" else {})}
    return {"seconds": time.perf_counter() - started, "rows": rows}


def _tree_rss(pids: list[int]) -> int:
    import psutil

    seen: set[int] = set()
    total = 0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            members = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for member in members:
            if member.pid in seen:
                continue
            seen.add(member.pid)
            try:
                total += member.memory_info().rss
            except psutil.Error:
                pass
    return total


def run(mode: str, data: Path, out: Path, ref: str, master: str, env: dict[str, str],
        also: list[int]) -> dict[str, Any]:
    """``measure`` in a child process; its result plus the peak RSS of its tree and ``also``."""
    command = [sys.executable, __file__, "--measure", mode, str(data), str(out), ref, master]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
    peak = 0
    while child.poll() is None:
        peak = max(peak, _tree_rss([child.pid, *also]))
        time.sleep(0.2)
    stdout, stderr = child.communicate()
    if child.returncode != 0:
        tail = stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"{mode} failed: {' | '.join(tail)}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss"] = peak
    # The machine's 1-minute load average at the end: other work slows every engine.
    result["load"] = f"{os.getloadavg()[0]:.1f}"
    return result


# -- data and model ----------------------------------------------------------------------------
def write_data(path: Path, rows: int, predictions: bool = False) -> None:
    """May's rows in 1M-row row groups; with ``predictions``, a synthetic 0/1 ``prediction``
    column (30% ones) in 500,000-row row groups, shaped as the streaming engine writes."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from workbench.demo.data import generate_month

    writer = None
    done = 0
    draw = np.random.default_rng(5)
    try:
        while done < rows:
            n = min(CHUNK, rows - done)
            frame = generate_month("20240531", rows=n, seed=1000 + done // CHUNK)
            if predictions:
                frame["prediction"] = (draw.random(n) < 0.3).astype("int64")
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=CHUNK // 2 if predictions else CHUNK)
            done += n
    finally:
        if writer is not None:
            writer.close()


def register_model(settings: Any) -> str:
    from workbench import tracking
    from workbench.demo.data import FEATURES, TARGET, generate_month
    from workbench.demo.training import build_pipeline
    from workbench.naming import ModelName
    from workbench.registry import Registry

    registry = Registry(settings)
    frame = generate_month("20240131", rows=5000)
    X = frame[list(FEATURES)]
    model = build_pipeline("gradient_boosting", list(FEATURES)).fit(X, frame[TARGET])
    name = ModelName("scale", "v1", "20240131")
    run_id = tracking.start_run(registry.client, name.instance, str(name), {})
    registry.register(model, name, run_id=run_id, input_example=X)
    registry.client.set_terminated(run_id)
    return str(name)


# -- the report ----------------------------------------------------------------------------------
def table(results: dict[int, dict[str, dict[str, Any]]]) -> str:
    lines = ["| rows | engine | seconds | rows/s | x streaming | Spark job alone: s (rows/s) | "
             "peak RSS (tree) | load |",
             "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for rows, by_mode in results.items():
        streaming = by_mode.get("streaming")
        for mode, r in by_mode.items():
            rate = r["rows"] / r["seconds"]
            ratio = (f"{rate / (streaming['rows'] / streaming['seconds']):.2f}"
                     if streaming and not mode.startswith("drift") else "")
            job = (f"{r['job_seconds']:.1f} ({r['rows'] / r['job_seconds']:,.0f})"
                   if r.get("job_seconds") else "")
            lines.append(f"| {rows:,} | {mode} | {r['seconds']:.1f} | {rate:,.0f} | {ratio} | "
                         f"{job} | {r['peak_rss'] / 2**20:,.0f} MiB | {r['load']} |")
    return "\n".join(lines)


def targets(results: dict[int, dict[str, dict[str, Any]]]) -> list[str]:
    out = []
    streaming = {rows: r["streaming"] for rows, r in results.items() if "streaming" in r}
    if len(streaming) >= 2:
        peaks = [r["peak_rss"] for r in streaming.values()]
        flat = max(peaks) <= 1.25 * min(peaks)
        out.append(f"{'PASS' if flat else 'FAIL'}: streaming peak RSS flat with size "
                   f"({', '.join(f'{p / 2**20:,.0f}' for p in peaks)} MiB)")
    for rows, by_mode in results.items():
        s = by_mode.get("streaming")
        if s and rows >= 30_000_000:
            out.append(f"{'PASS' if s['peak_rss'] < 2**31 else 'FAIL'}: streaming under 2 GB "
                       f"at {rows:,} rows ({s['peak_rss'] / 2**20:,.0f} MiB)")
        if s and "today" in by_mode:
            t = by_mode["today"]
            ok = s["rows"] / s["seconds"] >= 0.95 * t["rows"] / t["seconds"]
            out.append(f"{'PASS' if ok else 'FAIL'}: streaming no slower than today at "
                       f"{rows:,} rows ({s['seconds']:.1f} s against {t['seconds']:.1f} s)")
        for mode in ("spark-local", "spark-cluster"):
            if s and mode in by_mode:
                m = by_mode[mode]
                ratio = (s["rows"] / s["seconds"]) / (m["rows"] / m["seconds"])
                job = ((s["rows"] / s["seconds"]) / (m["rows"] / m["job_seconds"])
                       if m.get("job_seconds") else ratio)
                out.append(f"{'PASS' if ratio <= 1.5 else 'FAIL'}: {mode} within 1.5x of "
                           f"streaming at {rows:,} rows ({ratio:.2f}x slower; the Spark job "
                           f"alone, without the session's start, {job:.2f}x)")
        d = by_mode.get("drift-spark")
        if d and rows >= 30_000_000:
            job = f", the job alone {d['job_seconds']:.1f} s" if d.get("job_seconds") else ""
            out.append(f"{'PASS' if d['seconds'] < 60 else 'FAIL'}: Spark drift check on "
                       f"{rows:,} rows under 60 s ({d['seconds']:.1f} s{job})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1000000,10000000,30000000",
                        help="comma-separated sizes (default 1M, 10M and 30M)")
    parser.add_argument("--only", default=",".join(ENGINES),
                        help=f"comma-separated, among {', '.join(ENGINES)}")
    parser.add_argument("--skip-in-memory-above", type=int, default=10_000_000,
                        help="leave today and drift-pandas out above this many rows")
    parser.add_argument("--synthetic-predictions", action="store_true",
                        help="without streaming in --only, give the drift checks May's data "
                             "with a synthetic 0/1 prediction column (minutes less at 30M)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--measure", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return 0
    sizes = [int(v) for v in args.rows.split(",") if v.strip()]
    only = [v.strip() for v in args.only.split(",") if v.strip()]
    if set(only) - set(ENGINES):
        parser.error(f"--only takes {', '.join(ENGINES)}")

    from workbench.config import Settings
    from workbench.platforms import EmbeddedPlatform
    from workbench.pytest_plugin import free_port

    folder = Path(tempfile.mkdtemp(prefix="workbench-bench-scale-")).resolve()
    platform = cluster = None
    results: dict[int, dict[str, dict[str, Any]]] = {}
    try:
        settings = Settings.from_env(environ={}, cwd=folder, home=str(folder / ".workbench"),
                                     port=free_port())
        platform = EmbeddedPlatform(settings, workers=1)
        platform.up(say)
        env = {**os.environ, **settings.as_env(), "WORKBENCH_PORT": str(settings.port)}
        say("registering the demo's champion configuration")
        ref = register_model(settings)
        also: list[int] = []
        master = "local[2]"
        if "spark-cluster" in only:
            from _spark import StandaloneCluster

            cluster = StandaloneCluster(folder / "cluster").start()
            also = [p.pid for p in cluster.processes]
        for rows in sizes:
            data = folder / f"data-{rows}.parquet"
            scored = folder / f"scored-{rows}.parquet"
            synthetic = args.synthetic_predictions and "streaming" not in only
            if not all(m.startswith("drift") for m in only) or not synthetic:
                say(f"writing {rows:,} rows to {data.name}")
                write_data(data, rows)
            if synthetic and any(m.startswith("drift") for m in only):
                say(f"writing {rows:,} rows with synthetic predictions to {scored.name}")
                write_data(scored, rows, predictions=True)
            results[rows] = {}
            for mode in only:
                if mode in ("today", "drift-pandas") and rows > args.skip_in_memory_above:
                    continue
                out = {"today": folder / f"today-{rows}.parquet", "streaming": scored,
                       "spark-local": folder / f"spark-local-{rows}",
                       "spark-cluster": folder / f"spark-cluster-{rows}",
                       "drift-pandas": folder / f"drift-pandas-{rows}",
                       "drift-spark": folder / f"drift-spark-{rows}"}[mode]
                source = scored if mode.startswith("drift") else data
                if mode.startswith("drift") and not scored.exists():
                    say(f"{mode} needs the streaming engine's output; add streaming to --only")
                    continue
                where = cluster.master if mode == "spark-cluster" and cluster else master
                say(f"{rows:,} rows: {mode}")
                results[rows][mode] = run(mode, source, out, ref, where, env,
                                          also if mode == "spark-cluster" else [])
                r = results[rows][mode]
                say(f"  {r['seconds']:.1f} s, {r['rows'] / r['seconds']:,.0f} rows/s, peak RSS "
                    f"{r['peak_rss'] / 2**20:,.0f} MiB")
                if mode not in ("streaming",) and out.exists() and not mode.startswith("drift"):
                    shutil.rmtree(out) if out.is_dir() else out.unlink()
            data.unlink(missing_ok=True)
            scored.unlink(missing_ok=True)
    finally:
        if cluster is not None:
            cluster.stop()
        if platform is not None:
            platform.down(say)
        if args.keep:
            say(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    import pyspark
    import sklearn

    print(f"\nScale on {os.uname().nodename} ({os.cpu_count()} CPUs), Python "
          f"{sys.version.split()[0]}, pyspark {pyspark.__version__}, scikit-learn "
          f"{sklearn.__version__}; model: ColumnTransformer + HistGradientBoosting; Spark on "
          "local[2] and on a standalone cluster of one worker with 2 cores.\n")
    print(table(results))
    print()
    for line in targets(results):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
