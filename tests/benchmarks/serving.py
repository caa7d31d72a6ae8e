#!/usr/bin/env python
"""Benchmark: ``workbench serve`` against ``mlflow models serve`` on the same models.

Run by hand, never by pytest (the file name does not start with ``test_`` and it defines no
test functions)::

    python tests/benchmarks/serving.py [--duration S] [--only SECTION,...]

In one run on this machine it starts a real embedded platform (an ``mlflow server`` in a
temporary directory, stopped again on the way out) and registers:

* the demo's champion, ``churn_v2_20240131``: its v2 configuration (``workbench.demo.cycle``:
  a ColumnTransformer with imputer + scaler and one-hot, then HistGradientBoostingClassifier)
  fitted on January of the demo data (generated locally by ``workbench.demo.data``), with
  aliases ``champion`` (it) and ``challenger`` (``churn_v1_20240131``, the demo's v1: the same
  preprocessing and a LogisticRegression);
* an iris LogisticRegression as ``iris_v1_20240101``.

Every server runs alone on one core (``taskset -c 0``; children inherit the affinity) and
``wrk`` (one thread) on the other, after a 2 s warm-up per server and one request per payload
that checks the answers (200, one prediction per row, the same predictions as the fitted
model in this process). Workbench always logs its predictions (the default SQLite store under
the temporary home) and its ``/metrics`` give the mean rows per ``predict`` call of each cell
(``workbench_batch_rows`` _sum/_count deltas: batching at work). The sections (``--only``):

* ``churn``: ``mlflow models serve -m models:/churn/N --env-manager local -w 1`` (as shipped,
  so with uvicorn's access log on, written to a file) and ``workbench serve churn_v2_20240131
  --workers 1``; ``dataframe_split`` JSON with the demo's real columns (numbers and strings,
  as ``DataFrame.to_json(orient="split")`` writes them): 1 row at 1, 8 and 32 connections,
  100 rows at 8;
* ``iris``: the same two servers on the iris model, 1 row and 100 rows at 1, 8 and 32;
* ``batching``: churn, 1 row, 1 connection, workbench as shipped against ``--max-batch-rows
  1`` (a batch never holds more than one request), plus batching off at 8 connections;
* ``shadow``: churn, 1 row, 1 connection, ``workbench serve churn@champion`` with and without
  ``--shadow churn@challenger``, and the shadow's outcomes from ``/metrics``;
* ``follow``: ``workbench serve churn@champion --follow --poll-s 1`` under 8 connections for
  15 s; after 5 s the benchmark (pinned to wrk's core meanwhile) registers
  ``churn_v2_20240229`` (the same configuration, fitted on February before the load starts)
  and moves ``champion`` to it; it reports errors, p99 and max over the run, and when
  ``/metadata`` named the new instance, and ``workbench_model_swaps_total``;
* ``memory``: ``workbench serve churn_v2_20240131 --workers 2``, after a warm-up the RSS,
  PSS and USS of each worker process (psutil).

The markdown tables go to stdout, progress to stderr. Targets (from the issue), each a
PASS/FAIL line: churn 1 row at 8 connections >= 5x MLflow's req/s with p99 < 25 ms; at 32
connections >= 8x; churn 100 rows at 8 connections >= 3x; iris 1 row at 8 connections >= 8x
with p99 < 5 ms; batching costs at most 0.2 ms at p50 (1 connection); the shadow moves the
champion's p50 by at most 1 ms (1 connection); no failed request during the ``--follow`` swap,
and the swap happened. A cell with socket errors or non-2xx answers is flagged, never hidden,
and fails its target.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# packaging.py beside this script shadows the `packaging` library MLflow imports: put this
# folder last on the path, where only _proc is found in it.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE] + [str(_HERE)]

from _proc import cpu_ticks, say, wait_until_quiet  # noqa: E402

SECTIONS = ("churn", "iris", "batching", "shadow", "follow", "memory")
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS = ("iris", "v1", "20240101")
# The demo's names (workbench.demo.cycle): v2 (gradient boosting) is the champion, v1
# (logistic regression) the challenger, v2 retrained on February the champion's successor.
CHURN_CHAMPION = ("churn", "v2", "20240131")
CHURN_CHALLENGER = ("churn", "v1", "20240131")
CHURN_RETRAINED = ("churn", "v2", "20240229")
CHURN_ROWS = 5000  # customers per month, as the demo writes them
TARGET_CONNECTIONS = 8
# (model, rows, connections, least workbench/MLflow req/s ratio, p99 ceiling in ms or None)
RATIO_TARGETS = (
    ("churn", 1, 8, 5.0, 25.0),
    ("churn", 1, 32, 8.0, None),
    ("churn", 100, 8, 3.0, None),
    ("iris", 1, 8, 8.0, 5.0),
)
TARGET_BATCHING_P50_MS = 0.2
TARGET_SHADOW_P50_MS = 1.0
ROUNDS = 4  # alternating server starts (A B, B A, ...) for the 1-connection comparisons (medians)
FOLLOW_S = 15
FOLLOW_SWAP_AT_S = 5
FOLLOW_POLL_S = 1
WARMUP_S = 2
STARTUP_TIMEOUT_S = 180.0
WRK_TIMEOUT = "10s"
MB = 1024 * 1024


# -- wrk ---------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One wrk run: ``rows`` per request at ``connections``."""

    rows: int
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    others_share: float = float("nan")  # of the server's core, used by anything but the server
    batch_rows: float = float("nan")  # mean rows per predict call (workbench's /metrics)

    @property
    def errors(self) -> str:
        """``""`` when clean, else what went wrong, e.g. ``non-2xx 12, timeout 3``."""
        parts = [f"non-2xx {self.non_2xx}"] if self.non_2xx else []
        parts += [f"{kind} {n}" for kind, n in self.socket_errors.items() if n]
        return ", ".join(parts)


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def latency_ms(text: str) -> float:
    """wrk's ``812.00us`` / ``1.23ms`` / ``2.10s`` in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"unreadable wrk latency {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str, rows: int, connections: int) -> Cell:
    def find(pattern: str) -> re.Match:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"wrk output lacks /{pattern}/:\n{output}")
        return match

    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    sockets = re.search(r"Socket errors:\s*connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                        output)
    return Cell(
        rows=rows, connections=connections,
        rps=float(find(r"^Requests/sec:\s*([\d.]+)").group(1)),
        p50_ms=latency_ms(find(r"^\s*50%\s+(\S+)").group(1)),
        p99_ms=latency_ms(find(r"^\s*99%\s+(\S+)").group(1)),
        max_ms=latency_ms(find(r"^\s*Latency\s+\S+\s+\S+\s+(\S+)").group(1)),
        requests=int(find(r"^\s*(\d+) requests in").group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(zip(("connect", "read", "write", "timeout"),
                               map(int, sockets.groups()))) if sockets else {},
    )


def start_wrk(url: str, script: Path, connections: int, seconds: int,
              core: int) -> subprocess.Popen:
    argv = ["taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
            "--timeout", WRK_TIMEOUT, "--latency", "-s", str(script), f"{url}/invocations"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def finish_wrk(wrk: subprocess.Popen) -> str:
    out, err = wrk.communicate()
    if wrk.returncode != 0:
        raise RuntimeError(f"{' '.join(wrk.args)} exited with {wrk.returncode}:\n{err or out}")
    return out


def run_wrk(url: str, script: Path, connections: int, seconds: int, core: int) -> str:
    return finish_wrk(start_wrk(url, script, connections, seconds, core))


def payload(frame) -> bytes:
    """iris: all four columns are floats."""
    return json.dumps({"dataframe_split": {
        "columns": list(frame.columns),
        "data": [[float(v) for v in row] for row in frame.itertuples(index=False)],
    }}).encode()


def split_payload(frame) -> bytes:
    """Any frame as pandas writes it: ints stay ints, strings strings, NaN null."""
    return ('{"dataframe_split": ' + frame.to_json(orient="split", index=False) + "}").encode()


def write_lua(folder: Path, name: str, body: bytes) -> Path:
    script = folder / f"post_{name}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{body.decode()}]==]\n")
    return script


# -- the models and the platform -----------------------------------------------------------------
@dataclass
class Subject:
    """A model as both servers serve it, with its payloads and the cells measured on it."""

    key: str
    title: str
    mlflow_uri: str
    ref: str  # workbench's full name
    bodies: dict[int, bytes]  # rows -> request body
    expected: dict[int, list]  # rows -> the fitted model's predictions, in this process
    plan: list[tuple[int, int]]  # (rows, connections) per cell
    scripts: dict[int, Path] = field(default_factory=dict)


def iris_frame():
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.data.copy()
    frame.columns = IRIS_FEATURES
    return frame, iris.target


def register(registry, model, parts: tuple[str, str, str], X, experiment: str):
    from workbench import tracking
    from workbench.naming import ModelName

    name = ModelName(*parts)
    run_id = tracking.start_run(registry.client, experiment, str(name), {})
    # MLflow may print run links on stdout; keep stdout for the tables.
    with contextlib.redirect_stdout(sys.stderr):
        instance = registry.register(model, name, run_id=run_id, input_example=X)
        registry.client.set_terminated(run_id)
    say(f"registered {name} as models:/{instance.registered_model}/{instance.number}")
    return instance


def iris_subject(registry, connections: list[int]) -> Subject:
    from sklearn.linear_model import LogisticRegression

    X, y = iris_frame()
    model = LogisticRegression(max_iter=500).fit(X, y)
    instance = register(registry, model, IRIS, X, "iris")
    frames = {1: X.iloc[[0]], 100: X.sample(100, random_state=0)}
    return Subject(
        "iris", "iris LogisticRegression (4 float columns)",
        f"models:/{instance.registered_model}/{instance.number}", "_".join(IRIS),
        {rows: payload(f) for rows, f in frames.items()},
        {rows: model.predict(f).tolist() for rows, f in frames.items()},
        [(rows, c) for rows in frames for c in connections])


def churn_months(settings) -> dict[str, Any]:
    """January and February of the demo data, written as the demo writes them, read back."""
    import pandas as pd

    from workbench.demo.data import demo_data_path, write_demo_data

    months = ("20240131", "20240229")
    write_demo_data(settings.data_dir, months=months, rows=CHURN_ROWS, progress=say)
    return {m: pd.read_csv(demo_data_path(settings.data_dir, m)) for m in months}


def churn_model(version: str, frame):
    """The demo's configuration ``version`` fitted on ``frame``; returns (model, X)."""
    from workbench.demo.cycle import CONFIGURATIONS
    from workbench.demo.data import TARGET
    from workbench.demo.training import build_pipeline, select_features

    config = CONFIGURATIONS[version]
    columns = select_features(config["features"])
    model = build_pipeline(config["algorithm"], columns, config["hyperparameters"])
    X = frame[columns]
    return model.fit(X, frame[TARGET]), X


def churn_subject(registry, months: dict[str, Any], challenger: bool) -> Subject:
    model, X = churn_model(CHURN_CHAMPION[1], months[CHURN_CHAMPION[2]])
    instance = register(registry, model, CHURN_CHAMPION, X, "churn")
    client = registry.client
    client.set_registered_model_alias("churn", "champion", str(instance.number))
    if challenger:
        other, X_other = churn_model(CHURN_CHALLENGER[1], months[CHURN_CHALLENGER[2]])
        second = register(registry, other, CHURN_CHALLENGER, X_other, "churn")
        client.set_registered_model_alias("churn", "challenger", str(second.number))
    say(f"aliases: churn@champion -> {'_'.join(CHURN_CHAMPION)}"
        + (f", churn@challenger -> {'_'.join(CHURN_CHALLENGER)}" if challenger else ""))
    frames = {1: X.iloc[[0]], 100: X.sample(100, random_state=0)}
    return Subject(
        "churn", "the demo's champion: ColumnTransformer (imputer + scaler, one-hot) + "
        "HistGradientBoostingClassifier, 6 numeric and 3 string columns",
        f"models:/{instance.registered_model}/{instance.number}", "_".join(CHURN_CHAMPION),
        {rows: split_payload(f) for rows, f in frames.items()},
        {rows: model.predict(f).tolist() for rows, f in frames.items()},
        [(1, 1), (1, 8), (1, 32), (100, 8)])


def core_busy_ticks(core: int) -> int:
    """Ticks core ``core`` spent not idle (``/proc/stat``: all but idle and iowait)."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            ticks = [int(v) for v in line.split()[1:]]
            return sum(ticks) - ticks[3] - ticks[4]
    raise RuntimeError(f"no cpu{core} line in /proc/stat")


# -- the model servers ---------------------------------------------------------------------------
@dataclass
class Server:
    key: str
    label: str
    argv: list[str]
    env: dict[str, str]
    ready_path: str
    port: int
    log: Path
    process: subprocess.Popen | None = None

    @property
    def kind(self) -> str:
        return "mlflow" if self.key.startswith("mlflow") else "workbench"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, cwd: Path) -> None:
        say(f"starting {self.label}: {' '.join(self.argv)}")
        with open(self.log, "ab") as log:
            # Own session: the process group holds the server and what it starts (mlflow's
            # CLI runs uvicorn as a child), so stop() can signal exactly these processes.
            self.process = subprocess.Popen(self.argv, env=self.env, cwd=cwd,
                                            stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if http_status(self.url + self.ready_path) == 200:
                say(f"{self.label} is ready on {self.url} (pid {self.process.pid})")
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.process.returncode} during "
                                   f"start-up; last lines of {self.log}:\n{self.tail()}")
            time.sleep(0.25)
        raise RuntimeError(f"{self.label} not ready on {self.url}{self.ready_path} within "
                           f"{STARTUP_TIMEOUT_S:.0f} s; last lines of {self.log}:\n{self.tail()}")

    def stop(self, grace: float = 45.0) -> None:
        """SIGTERM this server's process group (by the pid we started), SIGKILL what is left."""
        from workbench.platforms.embedded import group_members

        process, self.process = self.process, None
        if process is None:
            return
        say(f"stopping {self.label} (pid {process.pid})")
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and group_members(process.pid):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.1)
            if not group_members(process.pid):
                break
            say(f"{self.label} still running after SIGTERM; killing it")
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def base_env() -> dict[str, str]:
    """This environment without workbench/MLflow settings, with this Python's bin first on PATH
    (``mlflow models serve`` runs ``uvicorn`` from PATH)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKBENCH_", "MLFLOW_"))}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.loads(reply.read())


@dataclass
class Bench:
    """What every section needs: where, how long, which cores."""

    settings: Any
    registry: Any
    folder: Path
    duration: int
    server_core: int
    load_core: int
    platform_pid: int

    def mlflow(self, subject: Subject) -> Server:
        from workbench.pytest_plugin import free_port

        port = free_port()
        return Server(
            f"mlflow-{subject.key}", "mlflow models serve",
            ["taskset", "-c", str(self.server_core), sys.executable, "-m", "mlflow", "models",
             "serve", "-m", subject.mlflow_uri, "--env-manager", "local", "-w", "1",
             "-h", "127.0.0.1", "-p", str(port)],
            {**base_env(), "MLFLOW_TRACKING_URI": self.settings.tracking_uri}, "/ping", port,
            self.folder / f"mlflow-{subject.key}.log")

    def workbench(self, key: str, ref: str, *options: str, workers: int = 1) -> Server:
        from workbench.pytest_plugin import free_port

        port = free_port()
        argv = ["taskset", "-c", str(self.server_core), sys.executable, "-m", "workbench.cli",
                "serve", ref, "--port", str(port), "--workers", str(workers),
                "--max-rows", "10000", *options]
        label = " ".join(["workbench serve", ref, *options]
                         + (["--workers", str(workers)] if workers != 1 else []))
        return Server(f"workbench-{key}", label, argv, {**base_env(), **self.settings.as_env()},
                      "/ready", port, self.folder / f"workbench-{key}.log")


@contextlib.contextmanager
def running(server: Server, bench: Bench) -> Iterator[Server]:
    server.start(bench.folder)
    try:
        yield server
    finally:
        server.stop()


def check_answers(server: Server, subject: Subject) -> None:
    """One request per payload: 200 and the fitted model's predictions, or the benchmark stops."""
    for rows, body in subject.bodies.items():
        status, reply = post(server.url + "/invocations", body)
        try:
            predictions = json.loads(reply)["predictions"]
        except (ValueError, KeyError, TypeError):
            predictions = None
        if status != 200 or not isinstance(predictions, list) or len(predictions) != rows:
            raise RuntimeError(f"{server.label}: {rows}-row request answered {status}: "
                               f"{reply[:300]!r}")
        if predictions != subject.expected[rows]:
            raise RuntimeError(f"{server.label}: the {rows}-row predictions differ from the "
                               f"fitted model's: {predictions[:10]} vs "
                               f"{subject.expected[rows][:10]}")


# -- workbench's /metrics --------------------------------------------------------------------------
def read_metrics(url: str) -> dict[str, float]:
    """Prometheus text as {name: value}, labelled series summed and also kept as name{labels}."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as reply:
        text = reply.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        name = series.split("{", 1)[0]
        values[name] = values.get(name, 0.0) + float(value)
        if "{" in series:
            values[series] = float(value)
    return values


def metric(values: dict[str, float], name: str) -> float:
    return values.get(name + "_total", values.get(name, float("nan")))


def labelled(values: dict[str, float], name: str, label: str) -> str:
    """``a: 3, b: 0`` for the series ``name{label="..."}``."""
    pattern = re.compile(re.escape(name) + r"\{" + label + r'="([^"]*)"\}')
    found = [(m.group(1), v) for k, v in sorted(values.items()) if (m := pattern.fullmatch(k))]
    return ", ".join(f"{what}: {v:.0f}" for what, v in found) or "none"


def wait_for_backlog(url: str, limit_s: float = 120.0) -> dict[str, float]:
    deadline = time.monotonic() + limit_s
    while True:
        values = read_metrics(url)
        backlog = metric(values, "workbench_prediction_log_backlog")
        # A server started with --no-log has no backlog metric (NaN): nothing to wait for.
        if backlog == 0 or backlog != backlog or time.monotonic() > deadline:
            return values
        say(f"waiting for the prediction log to drain (backlog {backlog:.0f})")
        time.sleep(0.5)


# -- measuring -------------------------------------------------------------------------------------
@dataclass
class LogSnapshot:
    model: str
    rows: int
    connections: int
    predicted: float
    backlog: float
    written: float
    dropped: float


def prepare(server: Server, subject: Subject, bench: Bench) -> None:
    """Check the answers, let the start-up settle, warm up (and drain the prediction log)."""
    check_answers(server, subject)
    wait_until_quiet([bench.platform_pid, server.process.pid])
    warm_up(server, subject, bench)


def warm_up(server: Server, subject: Subject, bench: Bench) -> None:
    per_payload = max(1, WARMUP_S // len(subject.scripts))
    for rows, script in subject.scripts.items():
        say(f"[{server.key}] warm-up: {rows} row(s), {TARGET_CONNECTIONS} connections, "
            f"{per_payload} s")
        run_wrk(server.url, script, TARGET_CONNECTIONS, per_payload, bench.load_core)
    if server.kind == "workbench":
        wait_for_backlog(server.url)


def one_cell(server: Server, subject: Subject, rows: int, connections: int, seconds: int,
             bench: Bench, during: Callable[[subprocess.Popen, float], None] | None = None,
             ) -> Cell:
    """One wrk run; ``during(wrk, started)`` runs while it loads the server."""
    before = read_metrics(server.url) if server.kind == "workbench" else {}
    # Other processes (not pinned away from the server's core) and interrupts steal time
    # from the server and stretch its tail; measure how much, per cell.
    started, busy = time.monotonic(), core_busy_ticks(bench.server_core)
    own = cpu_ticks(server.process.pid)
    wrk = start_wrk(server.url, subject.scripts[rows], connections, seconds, bench.load_core)
    try:
        if during is not None:
            during(wrk, started)
        output = finish_wrk(wrk)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    cell = parse_wrk(output, rows, connections)
    other = (core_busy_ticks(bench.server_core) - busy) - (cpu_ticks(server.process.pid) - own)
    cell.others_share = max(0.0, other / os.sysconf("SC_CLK_TCK") / (time.monotonic() - started))
    if server.kind == "workbench":
        after = read_metrics(server.url)
        calls = after.get("workbench_batch_rows_count", 0) - before.get(
            "workbench_batch_rows_count", 0)
        predicted = after.get("workbench_batch_rows_sum", 0) - before.get(
            "workbench_batch_rows_sum", 0)
        cell.batch_rows = predicted / calls if calls else float("nan")
    flag = f"  ERRORS: {cell.errors}" if cell.errors else ""
    say(f"[{server.key}] {rows:>3} row(s), {connections:>2} connections: {cell.rps:8.0f} req/s, "
        f"p50 {cell.p50_ms:.2f} ms, p99 {cell.p99_ms:.2f} ms, {cell.batch_rows:.1f} rows per "
        f"predict ({cell.requests} requests; others used {cell.others_share:.0%} of core "
        f"{bench.server_core}){flag}")
    return cell


def measure(server: Server, subject: Subject, plan: list[tuple[int, int]], bench: Bench,
            snapshots: list[LogSnapshot] | None = None) -> dict[tuple[int, int], Cell]:
    """``plan``'s cells on a started server, after ``prepare``."""
    prepare(server, subject, bench)
    cells = {}
    for rows, connections in plan:
        cells[(rows, connections)] = one_cell(server, subject, rows, connections,
                                              bench.duration, bench)
        if server.kind == "workbench":
            # Read at the end of the cell (before draining), then let the next cell start
            # with an empty backlog, so that no cell pays for another's writes.
            values = read_metrics(server.url)
            if snapshots is not None:
                snapshots.append(LogSnapshot(
                    subject.key, rows, connections, metric(values, "workbench_rows_predicted"),
                    metric(values, "workbench_prediction_log_backlog"),
                    metric(values, "workbench_prediction_log_written"),
                    metric(values, "workbench_prediction_log_dropped")))
            wait_for_backlog(server.url)
    return cells


def ratio(ours: Cell, theirs: Cell) -> float:
    return ours.rps / theirs.rps if theirs.rps else float("inf")


def fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def verdict(ok: bool) -> str:
    return f"**{'PASS' if ok else 'FAIL'}**"


def clean(*cells: Cell) -> bool:
    return not any(c.errors for c in cells)


def errors_of(**cells: Cell) -> str:
    return "; ".join(f"{name}: {cell.errors}" for name, cell in cells.items()
                     if cell.errors) or "none"


@dataclass
class Section:
    """A section's markdown and its targets' outcomes."""

    title: str
    lines: list[str]
    targets: list[bool] = field(default_factory=list)


# -- the sections ----------------------------------------------------------------------------------
def compare(subjects: list[Subject], bench: Bench) -> Section:
    """``mlflow models serve`` and ``workbench serve`` on each subject, one server at a time."""
    results: dict[str, dict[str, dict[tuple[int, int], Cell]]] = {}
    snapshots: list[LogSnapshot] = []
    finals: dict[str, dict[str, float]] = {}
    for subject in subjects:
        results[subject.key] = {}
        for server in (bench.mlflow(subject), bench.workbench(subject.key, subject.ref)):
            with running(server, bench):
                results[subject.key][server.kind] = measure(server, subject, subject.plan,
                                                            bench, snapshots)
                if server.kind == "workbench":
                    finals[subject.key] = wait_for_backlog(server.url)
    lines = [
        "| model | rows | connections | mlflow req/s | mlflow p50 ms | mlflow p99 ms "
        "| workbench req/s | workbench p50 ms | workbench p99 ms | ratio "
        "| workbench rows per predict | errors | server core used by others "
        "(mlflow / workbench run) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for key, by_server in results.items():
        for cell_key, m in by_server["mlflow"].items():
            w = by_server["workbench"][cell_key]
            lines.append(
                f"| {key} | {cell_key[0]} | {cell_key[1]} | {fmt(m.rps, 0)} | {fmt(m.p50_ms)} "
                f"| {fmt(m.p99_ms)} | {fmt(w.rps, 0)} | {fmt(w.p50_ms)} | {fmt(w.p99_ms)} "
                f"| {ratio(w, m):.2f}x | {fmt(w.batch_rows, 1)} "
                f"| {errors_of(mlflow=m, workbench=w)} "
                f"| {m.others_share:.0%} / {w.others_share:.0%} |")
    lines.append("")
    targets = []
    for key, rows, connections, least, p99 in RATIO_TARGETS:
        if key not in results:
            continue
        m, w = (results[key][kind][(rows, connections)] for kind in ("mlflow", "workbench"))
        ok = ratio(w, m) >= least and clean(m, w) and (p99 is None or w.p99_ms < p99)
        targets.append(ok)
        lines.append(
            f"- Target {key}, {rows} row(s), {connections} connections: workbench >= {least:g}x "
            f"MLflow's req/s{f' with p99 < {p99:g} ms' if p99 else ''}, no errors: ratio "
            f"{ratio(w, m):.2f}x, p99 {w.p99_ms:.2f} ms: {verdict(ok)}")
    for subject in subjects:
        lines.append(f"- {subject.key}: {subject.title}; both servers gave the fitted model's "
                     f"predictions for the check requests (1 and 100 rows).")
    lines += [
        "- \"Rows per predict\": mean rows per predict call during the cell "
        "(workbench_batch_rows _sum/_count); above the request's rows, requests were merged.",
        "- \"Server core used by others\": the share of the server's core busy with anything "
        "but the server under test during the cell (other processes, interrupts, loopback "
        "networking); a high share means the numbers, p99 first, are disturbed.",
        "",
        "Workbench prediction log (cumulative per server, read from /metrics at the end of each "
        "cell, before the backlog drained):",
        "",
        "| model | rows | connections | rows predicted | log written | log backlog "
        "| log dropped |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {s.model} | {s.rows} | {s.connections} | {s.predicted:.0f} | {s.written:.0f} "
              f"| {s.backlog:.0f} | {s.dropped:.0f} |" for s in snapshots]
    lines.append("")
    for key, final in finals.items():
        lines.append(
            f"- {key}, after draining: rows predicted "
            f"{metric(final, 'workbench_rows_predicted'):.0f}, prediction log written "
            f"{metric(final, 'workbench_prediction_log_written'):.0f}, backlog "
            f"{metric(final, 'workbench_prediction_log_backlog'):.0f}, dropped "
            f"{metric(final, 'workbench_prediction_log_dropped'):.0f}, write errors "
            f"{metric(final, 'workbench_prediction_log_write_errors'):.0f}; requests by "
            f"status: {labelled(final, 'workbench_requests_total', 'status')}.")
    title = "workbench serve against mlflow models serve (one worker each)"
    return Section(title, lines, targets)


def variant_table(rows: list[tuple[str, Cell]]) -> list[str]:
    lines = [
        "| server | rows | connections | req/s | p50 ms | p99 ms | max ms | rows per predict "
        "| errors | server core used by others |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    lines += [f"| `{label}` | {c.rows} | {c.connections} | {fmt(c.rps, 0)} | {fmt(c.p50_ms)} "
              f"| {fmt(c.p99_ms)} | {fmt(c.max_ms)} | {fmt(c.batch_rows, 1)} "
              f"| {c.errors or 'none'} | {c.others_share:.0%} |" for label, c in rows]
    return lines


def alternate(variants: list, churn: Subject, bench: Bench) -> list[list[Cell]]:
    """1 row at 1 connection for each variant, in ``ROUNDS`` alternating rounds (a fresh
    process each time): one process's p50 differs from the next one's by up to a millisecond
    here, so a single pair cannot resolve a 0.2 ms target; the median of the rounds can."""
    cells: list[list[Cell]] = [[] for _ in variants]
    for round_number in range(ROUNDS):
        # A B, then B A: a variant that always ran second would carry any order effect.
        order = list(enumerate(variants))
        for index, server in order if round_number % 2 == 0 else order[::-1]:
            with running(server, bench):
                cells[index].append(measure(server, churn, [(1, 1)], bench)[(1, 1)])
    return cells


def median_p50(cells: list[Cell]) -> float:
    return statistics.median(c.p50_ms for c in cells)


def batching(churn: Subject, bench: Bench) -> Section:
    """At 1 connection batching can merge nothing: what does its machinery cost?"""
    on = bench.workbench("batching-on", churn.ref)
    off = bench.workbench("batching-off", churn.ref, "--max-batch-rows", "1")
    cells_on, cells_off = alternate([on, off], churn, bench)
    rows = [(f"{on.label} (round {i + 1})", c) for i, c in enumerate(cells_on)]
    rows += [(f"{off.label} (round {i + 1})", c) for i, c in enumerate(cells_off)]
    with running(off, bench):
        rows.append((off.label, measure(off, churn, [(1, TARGET_CONNECTIONS)], bench)[
            (1, TARGET_CONNECTIONS)]))
    cost = median_p50(cells_on) - median_p50(cells_off)
    ok = cost <= TARGET_BATCHING_P50_MS and clean(*cells_on, *cells_off)
    lines = [
        *variant_table(rows),
        "",
        f"- Target: at 1 connection, batching (as shipped) costs at most "
        f"{TARGET_BATCHING_P50_MS:g} ms at p50 against batching off (--max-batch-rows 1), no "
        f"errors: median p50 of {ROUNDS} rounds {median_p50(cells_on):.2f} ms against "
        f"{median_p50(cells_off):.2f} ms, {cost:+.2f} ms: {verdict(ok)}",
        f"- Batching off at {TARGET_CONNECTIONS} connections has no target: the churn section's "
        f"1-row cell at {TARGET_CONNECTIONS} connections is the same load with batching on.",
    ]
    return Section("Batching cost (churn, 1 row)", lines, [ok])


def shadow(churn: Subject, bench: Bench) -> Section:
    """The champion's latency with and without a shadow challenger scoring every request."""
    champion = "churn@champion"
    off = bench.workbench("shadow-off", champion)
    on = bench.workbench("shadow-on", champion, "--shadow", "churn@challenger")
    cells_off: list[Cell] = []
    cells_on: list[Cell] = []
    for round_number in range(ROUNDS):  # alternating, fresh processes (see ``alternate``)
        if round_number % 2 == 0:
            with running(off, bench):
                cells_off.append(measure(off, churn, [(1, 1)], bench)[(1, 1)])
        with running(on, bench):
            cells_on.append(measure(on, churn, [(1, 1)], bench)[(1, 1)])
            # The shadow scores in batches a fraction of a second late: wait until it has
            # seen every request the champion answered (or 10 s), then read its outcomes.
            deadline = time.monotonic() + 10
            while True:
                values = wait_for_backlog(on.url)
                seen = metric(values, "workbench_shadow_requests")
                answered = metric(values, "workbench_requests")
                if seen >= answered or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            meta = get_json(on.url + "/metadata")
        if round_number % 2 == 1:
            with running(off, bench):
                cells_off.append(measure(off, churn, [(1, 1)], bench)[(1, 1)])
    rows = [(f"{off.label} (round {i + 1})", c) for i, c in enumerate(cells_off)]
    rows += [(f"{on.label} (round {i + 1})", c) for i, c in enumerate(cells_on)]
    shift = median_p50(cells_on) - median_p50(cells_off)
    ok = abs(shift) <= TARGET_SHADOW_P50_MS and clean(*cells_on, *cells_off)
    lines = [
        *variant_table(rows),
        "",
        f"- Target: with --shadow, the champion's p50 at 1 connection within "
        f"{TARGET_SHADOW_P50_MS:g} ms of shadow off, no errors: median p50 of {ROUNDS} rounds "
        f"{median_p50(cells_on):.2f} ms against {median_p50(cells_off):.2f} ms, {shift:+.2f} ms: "
        f"{verdict(ok)}",
        f"- Last round: served {meta.get('full_name')}, shadow {meta.get('shadow', {}).get('full_name')}; "
        f"workbench_shadow_requests_total by outcome: "
        f"{labelled(values, 'workbench_shadow_requests_total', 'outcome')} (requests answered "
        f"{answered:.0f}, by status: {labelled(values, 'workbench_requests_total', 'status')}); "
        f"prediction log written {metric(values, 'workbench_prediction_log_written'):.0f} "
        f"(champion and shadow), dropped {metric(values, 'workbench_prediction_log_dropped'):.0f}.",
    ]
    return Section("Shadow cost (churn, 1 row)", lines, [ok])


@contextlib.contextmanager
def pinned(core: int) -> Iterator[None]:
    """This thread (and threads it starts) on ``core`` only, then back."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def follow(churn: Subject, months: dict[str, Any], bench: Bench) -> Section:
    """An alias move under load: the follower loads, warms and swaps in the new instance."""
    new_name = "_".join(CHURN_RETRAINED)
    model, X = churn_model(CHURN_RETRAINED[1], months[CHURN_RETRAINED[2]])  # before the load
    server = bench.workbench("follow", "churn@champion", "--follow", "--poll-s",
                             str(FOLLOW_POLL_S))
    events: dict[str, float] = {}

    def swap_under_load(wrk: subprocess.Popen, started: float) -> None:
        time.sleep(max(0.0, started + FOLLOW_SWAP_AT_S - time.monotonic()))
        events["register"] = time.monotonic() - started
        say(f"[{server.key}] {events['register']:.1f} s into the load: registering {new_name} "
            f"and moving churn@champion to it")
        with pinned(bench.load_core):  # keep the benchmark's own work off the server's core
            instance = register(bench.registry, model, CHURN_RETRAINED, X, "churn")
            bench.registry.client.set_registered_model_alias("churn", "champion",
                                                             str(instance.number))
        events["alias"] = time.monotonic() - started
        while wrk.poll() is None:
            if get_json(server.url + "/metadata").get("full_name") == new_name:
                events["swap"] = time.monotonic() - started
                say(f"[{server.key}] /metadata names {new_name} {events['swap']:.1f} s into "
                    "the load")
                return
            time.sleep(0.2)

    with running(server, bench):
        prepare(server, churn, bench)
        old_name = get_json(server.url + "/metadata").get("full_name")
        cell = one_cell(server, churn, 1, TARGET_CONNECTIONS, FOLLOW_S, bench,
                        during=swap_under_load)
        after = get_json(server.url + "/metadata").get("full_name")
        values = wait_for_backlog(server.url)
    swaps = metric(values, "workbench_model_swaps")
    swapped = "swap" in events and after == new_name and swaps >= 1
    ok = swapped and clean(cell)
    when = (f"{events['register']:.1f} s (alias moved at {events.get('alias', float('nan')):.1f}"
            f" s); /metadata named {new_name} at "
            + (f"{events['swap']:.1f} s" if "swap" in events else "no time during the load"))
    lines = [
        *variant_table([(server.label, cell)]),
        "",
        f"- Target: zero non-2xx responses and socket errors during the swap, and the swap "
        f"happened: errors {cell.errors or 'none'}, served {old_name} -> {after}, "
        f"workbench_model_swaps_total {swaps:.0f}: {verdict(ok)}",
        f"- {FOLLOW_S} s of load at {TARGET_CONNECTIONS} connections, 1 row; registering "
        f"began at {when}; p99 over the run {cell.p99_ms:.2f} ms, max {cell.max_ms:.2f} ms.",
        f"- Swaps refused: {labelled(values, 'workbench_model_swaps_refused_total', 'reason')}; "
        f"requests by status: {labelled(values, 'workbench_requests_total', 'status')}.",
    ]
    return Section("A --follow swap under load (churn, 1 row)", lines, [ok])


def memory(churn: Subject, bench: Bench) -> Section:
    """Resident memory of each worker of a two-worker server after a warm-up."""
    import psutil

    server = bench.workbench("memory", churn.ref, workers=2)
    def cpu_s(process) -> float:
        times = process.cpu_times()
        return times.user + times.system

    with running(server, bench):
        check_answers(server, churn)
        wait_until_quiet([bench.platform_pid, server.process.pid])
        parent = psutil.Process(server.process.pid)
        # uvicorn's workers are spawned children of the supervisor (multiprocessing.spawn).
        workers = [p for p in parent.children()
                   if "spawn_main" in " ".join(p.cmdline())]
        processes = [("supervisor", parent)] + [("worker", w) for w in workers]
        cpu_before = [cpu_s(process) for _, process in processes]
        warm_up(server, churn, bench)
        table = []
        for (role, process), before in zip(processes, cpu_before):
            info = process.memory_full_info()
            table.append((role, process.pid, info.rss / MB, getattr(info, "pss", float("nan")) / MB,
                          info.uss / MB, cpu_s(process) - before))
    lines = [
        "| process | pid | RSS MB | PSS MB | USS MB | CPU s in the warm-up |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {role} | {pid} | {rss:.0f} | {pss:.0f} | {uss:.0f} | {cpu:.1f} |"
              for role, pid, rss, pss, uss, cpu in table]
    shown = [row for row in table if row[0] == "worker"]
    if len(shown) == 2:
        lines += ["", f"- Per worker (mean of 2): RSS {sum(r[2] for r in shown) / 2:.0f} MB, "
                      f"PSS {sum(r[3] for r in shown) / 2:.0f} MB, USS "
                      f"{sum(r[4] for r in shown) / 2:.0f} MB (USS: memory only that worker "
                      "holds; RSS counts shared libraries in full in each)."]
    else:
        lines += ["", f"- Expected 2 worker processes, found {len(shown)}: "
                      f"{[' '.join(p.cmdline())[:80] for p in workers]}"]
    lines.append(f"- `{server.label}`, after a {WARMUP_S} s warm-up (1 and 100 rows at "
                 f"{TARGET_CONNECTIONS} connections; the CPU column shows which workers "
                 "served it).")
    return Section("Memory with --workers 2 (churn)", lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10,
                        help="seconds of load per cell (default 10; the --follow run takes "
                             f"{FOLLOW_S} s whatever it is)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})")
    parser.add_argument("--connections", default="1,8,32",
                        help="comma-separated wrk connection counts for iris (default 1,8,32; "
                             f"must include {TARGET_CONNECTIONS})")
    parser.add_argument("--server-core", type=int, default=0, help="core for the servers (0)")
    parser.add_argument("--load-core", type=int, default=1, help="core for wrk (1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    connections = sorted({int(c) for c in args.connections.split(",") if c.strip()})
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    if args.duration < 1:
        parser.error("--duration must be at least 1")
    if TARGET_CONNECTIONS not in connections or min(connections) < 1:
        parser.error(f"--connections must be positive and include {TARGET_CONNECTIONS}")
    if not only or set(only) - set(SECTIONS):
        parser.error(f"--only takes sections among {', '.join(SECTIONS)}")
    allowed = os.sched_getaffinity(0)
    if args.server_core == args.load_core or not {args.server_core, args.load_core} <= allowed:
        parser.error(f"--server-core and --load-core must be two different cores of {allowed}")
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not on PATH")

    from workbench.config import Settings
    from workbench.platforms import EmbeddedPlatform
    from workbench.pytest_plugin import free_port
    from workbench.registry import Registry

    begun = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="workbench-bench-serving-")).resolve()
    platform = None
    sections: list[Section] = []
    try:
        settings = Settings.from_env(environ={}, cwd=folder, home=str(folder / ".workbench"),
                                     port=free_port())
        platform = EmbeddedPlatform(settings, workers=1)
        say(f"benchmark directory: {folder}")
        status = platform.up(say)
        bench = Bench(settings, Registry(settings), folder, args.duration, args.server_core,
                      args.load_core, status.pid)
        subjects: dict[str, Subject] = {}
        months: dict[str, Any] = {}
        if set(only) - {"iris"}:
            months = churn_months(settings)
            subjects["churn"] = churn_subject(bench.registry, months, "shadow" in only)
        if "iris" in only:
            subjects["iris"] = iris_subject(bench.registry, connections)
        for subject in subjects.values():
            subject.scripts = {rows: write_lua(folder, f"{subject.key}_{rows}", body)
                               for rows, body in subject.bodies.items()}
        load_before = os.getloadavg()[0]
        compared = [subjects[key] for key in ("churn", "iris") if key in only]
        if compared:
            sections.append(compare(compared, bench))
        if "batching" in only:
            sections.append(batching(subjects["churn"], bench))
        if "shadow" in only:
            sections.append(shadow(subjects["churn"], bench))
        if "memory" in only:
            sections.append(memory(subjects["churn"], bench))
        if "follow" in only:  # last: it moves churn@champion
            sections.append(follow(subjects["churn"], months, bench))
        load_after = os.getloadavg()[0]
    finally:
        if platform is not None:
            platform.down(say)
        if args.keep:
            say(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    import mlflow
    import sklearn

    print(f"\nServing on {os.uname().nodename} ({os.cpu_count()} CPUs; servers on core "
          f"{args.server_core}, wrk on core {args.load_core}; 1-min load average "
          f"{load_before:.1f} before, {load_after:.1f} after), Python {sys.version.split()[0]}, "
          f"MLflow {mlflow.__version__}, scikit-learn {sklearn.__version__}; one worker per "
          f"server unless said, {args.duration} s per cell after a {WARMUP_S} s warm-up, "
          f"prediction logging on (SQLite) for workbench; sections: {', '.join(only)}.")
    for section in sections:
        print(f"\n### {section.title}\n")
        print("\n".join(section.lines))
    targets = [ok for section in sections for ok in section.targets]
    print(f"\nTargets: {sum(targets)} PASS, {len(targets) - sum(targets)} FAIL.")
    say(f"total benchmark time: {time.perf_counter() - begun:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
