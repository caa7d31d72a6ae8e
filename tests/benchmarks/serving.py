#!/usr/bin/env python
"""Benchmark: ``workbench serve`` against ``mlflow models serve`` on the same model.

Run by hand, never by pytest (the file name does not start with ``test_`` and it defines no
test functions)::

    python tests/benchmarks/serving.py [--duration S]

In one run on this machine it starts a real embedded platform (an ``mlflow server`` in a
temporary directory, stopped again on the way out), registers an iris LogisticRegression as
``iris_v1_20240101`` and serves it twice, one server at a time, each with one worker and
pinned to one core (``taskset -c 0``; children inherit the affinity):

* ``mlflow models serve -m models:/iris/1 --env-manager local -w 1`` (as shipped, so with
  uvicorn's access log on, written to a file);
* ``workbench serve iris_v1_20240101 --workers 1`` with prediction logging ON (the default
  SQLite store under the temporary home).

``wrk`` (one thread, pinned to the other core) posts ``dataframe_split`` JSON with 1 row and
with 100 rows at 1, 8 and 32 connections, after a 2 s warm-up per server. Before measuring,
one request per payload checks that both servers answer 200 with one prediction per row (and
the same predictions). After workbench's runs the script reads its ``/metrics`` (rows
predicted, prediction-log backlog/dropped/written) and waits for the backlog to drain.

The markdown table goes to stdout, progress to stderr. Targets (from the issue; MLflow anchor
measured before: 410 req/s, p50 15 ms, p99 91 ms for 1 row at 8 connections on one core):
1 row at 8 connections, workbench >= 5x MLflow's req/s with p99 under 10 ms; 100 rows at
8 connections, >= 3x. A cell with socket errors or non-2xx answers is flagged, never hidden,
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
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from _proc import cpu_ticks, say, wait_until_quiet

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
MODEL = ("iris", "v1", "20240101")
TARGET_CONNECTIONS = 8
TARGET_1ROW_RATIO = 5.0
TARGET_1ROW_P99_MS = 10.0
TARGET_100ROW_RATIO = 3.0
WARMUP_S = 2
STARTUP_TIMEOUT_S = 180.0
WRK_TIMEOUT = "10s"


# -- wrk ---------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One wrk run: ``rows`` per request at ``connections``."""

    rows: int
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    others_share: float = float("nan")  # of the server's core, used by anything but the server

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
        requests=int(find(r"^\s*(\d+) requests in").group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(zip(("connect", "read", "write", "timeout"),
                               map(int, sockets.groups()))) if sockets else {},
    )


def run_wrk(url: str, script: Path, connections: int, seconds: int, core: int) -> str:
    argv = ["taskset", "-c", str(core), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
            "--timeout", WRK_TIMEOUT, "--latency", "-s", str(script), f"{url}/invocations"]
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {done.returncode}:\n"
                           f"{done.stderr or done.stdout}")
    return done.stdout


def payload(frame) -> bytes:
    return json.dumps({"dataframe_split": {
        "columns": list(frame.columns),
        "data": [[float(v) for v in row] for row in frame.itertuples(index=False)],
    }}).encode()


def write_lua(folder: Path, rows: int, body: bytes) -> Path:
    script = folder / f"post_{rows}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{body.decode()}]==]\n")
    return script


# -- the model and the platform ------------------------------------------------------------------
def iris_frame():
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.data.copy()
    frame.columns = FEATURES
    return frame, iris.target


def register_iris(settings) -> None:
    from sklearn.linear_model import LogisticRegression

    from workbench import tracking
    from workbench.naming import ModelName
    from workbench.registry import Registry

    X, y = iris_frame()
    model = LogisticRegression(max_iter=500).fit(X, y)
    registry = Registry(settings)
    name = ModelName(*MODEL)
    run_id = tracking.start_run(registry.client, "iris", str(name), {})
    instance = registry.register(model, name, run_id=run_id, input_example=X)
    registry.client.set_terminated(run_id)
    say(f"registered {name} as models:/{instance.registered_model}/{instance.number}")


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


def build_servers(settings, folder: Path, core: int) -> list[Server]:
    from workbench.pytest_plugin import free_port

    pin = ["taskset", "-c", str(core)]
    mlflow_port, workbench_port = free_port(), free_port()
    while workbench_port == mlflow_port:
        workbench_port = free_port()
    mlflow_env = {**base_env(), "MLFLOW_TRACKING_URI": settings.tracking_uri}
    workbench_env = {**base_env(), **settings.as_env()}
    return [
        Server("mlflow", "mlflow models serve",
               [*pin, sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/iris/1",
                "--env-manager", "local", "-w", "1", "-h", "127.0.0.1", "-p", str(mlflow_port)],
               mlflow_env, "/ping", mlflow_port, folder / "mlflow-serve.log"),
        Server("workbench", "workbench serve",
               [*pin, sys.executable, "-m", "workbench.cli", "serve", "_".join(MODEL),
                "--port", str(workbench_port), "--workers", "1", "--max-rows", "10000"],
               workbench_env, "/ready", workbench_port, folder / "workbench-serve.log"),
    ]


def check_answers(server: Server, bodies: dict[int, bytes]) -> dict[int, list]:
    """One request per payload: 200 and one prediction per row, or the benchmark stops."""
    answers = {}
    for rows, body in bodies.items():
        status, reply = post(server.url + "/invocations", body)
        try:
            predictions = json.loads(reply)["predictions"]
        except (ValueError, KeyError, TypeError):
            predictions = None
        if status != 200 or not isinstance(predictions, list) or len(predictions) != rows:
            raise RuntimeError(f"{server.label}: {rows}-row request answered {status}: "
                               f"{reply[:300]!r}")
        answers[rows] = predictions
    return answers


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


def wait_for_backlog(url: str, limit_s: float = 120.0) -> dict[str, float]:
    deadline = time.monotonic() + limit_s
    while True:
        values = read_metrics(url)
        backlog = metric(values, "workbench_prediction_log_backlog")
        if backlog == 0 or time.monotonic() > deadline:
            return values
        say(f"waiting for the prediction log to drain (backlog {backlog:.0f})")
        time.sleep(0.5)


# -- measuring -------------------------------------------------------------------------------------
@dataclass
class LogSnapshot:
    rows: int
    connections: int
    predicted: float
    backlog: float
    written: float
    dropped: float


def measure(server: Server, scripts: dict[int, Path], connections: list[int], duration: int,
            core: int, server_core: int) -> tuple[list[Cell], list[LogSnapshot]]:
    per_payload = max(1, WARMUP_S // len(scripts))
    for rows, script in scripts.items():
        say(f"[{server.key}] warm-up: {rows} row(s), {TARGET_CONNECTIONS} connections, "
            f"{per_payload} s")
        run_wrk(server.url, script, TARGET_CONNECTIONS, per_payload, core)
    if server.key == "workbench":
        wait_for_backlog(server.url)
    cells, snapshots = [], []
    for rows, script in scripts.items():
        for c in connections:
            # Other processes (not pinned away from the server's core) and interrupts steal
            # time from the server and stretch its tail; measure how much, per cell.
            started, busy = time.monotonic(), core_busy_ticks(server_core)
            own = cpu_ticks(server.process.pid)
            cell = parse_wrk(run_wrk(server.url, script, c, duration, core), rows, c)
            other_ticks = (core_busy_ticks(server_core) - busy) - (cpu_ticks(server.process.pid) - own)
            cell.others_share = max(0.0, other_ticks / os.sysconf("SC_CLK_TCK")
                                    / (time.monotonic() - started))
            cells.append(cell)
            flag = f"  ERRORS: {cell.errors}" if cell.errors else ""
            say(f"[{server.key}] {rows:>3} row(s), {c:>2} connections: {cell.rps:8.0f} req/s, "
                f"p50 {cell.p50_ms:.2f} ms, p99 {cell.p99_ms:.2f} ms "
                f"({cell.requests} requests; others used {cell.others_share:.0%} of core "
                f"{server_core}){flag}")
            if server.key == "workbench":
                # Read at the end of the cell (before draining), then let the next cell start
                # with an empty backlog, so that no cell pays for another's writes.
                values = read_metrics(server.url)
                snapshots.append(LogSnapshot(
                    rows, c, metric(values, "workbench_rows_predicted"),
                    metric(values, "workbench_prediction_log_backlog"),
                    metric(values, "workbench_prediction_log_written"),
                    metric(values, "workbench_prediction_log_dropped")))
                wait_for_backlog(server.url)
    return cells, snapshots


def ratio(ours: Cell, theirs: Cell) -> float:
    return ours.rps / theirs.rps if theirs.rps else float("inf")


def fmt(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def report(results: dict[str, list[Cell]], snapshots: list[LogSnapshot],
           final: dict[str, float], same_predictions: bool) -> tuple[str, bool]:
    ml = {(c.rows, c.connections): c for c in results["mlflow"]}
    wb = {(c.rows, c.connections): c for c in results["workbench"]}
    lines = [
        "| rows | connections | mlflow req/s | mlflow p50 ms | mlflow p99 ms | workbench req/s "
        "| workbench p50 ms | workbench p99 ms | ratio | errors | server core used by others "
        "(mlflow / workbench run) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for key, m in ml.items():
        w = wb[key]
        errors = "; ".join(f"{name}: {cell.errors}" for name, cell in
                           (("mlflow", m), ("workbench", w)) if cell.errors) or "none"
        lines.append(f"| {key[0]} | {key[1]} | {fmt(m.rps, 0)} | {fmt(m.p50_ms)} | "
                     f"{fmt(m.p99_ms)} | {fmt(w.rps, 0)} | {fmt(w.p50_ms)} | {fmt(w.p99_ms)} | "
                     f"{ratio(w, m):.2f}x | {errors} | {m.others_share:.0%} / "
                     f"{w.others_share:.0%} |")

    def clean(*cells: Cell) -> bool:
        return not any(c.errors for c in cells)

    m1, w1 = ml[(1, TARGET_CONNECTIONS)], wb[(1, TARGET_CONNECTIONS)]
    m100, w100 = ml[(100, TARGET_CONNECTIONS)], wb[(100, TARGET_CONNECTIONS)]
    ratio1, ratio100 = ratio(w1, m1), ratio(w100, m100)
    ok1 = ratio1 >= TARGET_1ROW_RATIO and w1.p99_ms < TARGET_1ROW_P99_MS and clean(m1, w1)
    ok100 = ratio100 >= TARGET_100ROW_RATIO and clean(m100, w100)
    others = ", ".join(f"{c} connections {ratio(wb[(100, c)], ml[(100, c)]):.2f}x"
                       for (rows, c) in ml if rows == 100 and c != TARGET_CONNECTIONS)
    lines += [
        "",
        f"- Target 1 row, {TARGET_CONNECTIONS} connections: workbench >= {TARGET_1ROW_RATIO:g}x "
        f"MLflow's req/s with p99 < {TARGET_1ROW_P99_MS:g} ms, no errors: ratio {ratio1:.2f}x, "
        f"p99 {w1.p99_ms:.2f} ms: **{'PASS' if ok1 else 'FAIL'}**",
        f"- Target 100 rows, {TARGET_CONNECTIONS} connections: workbench >= "
        f"{TARGET_100ROW_RATIO:g}x MLflow's req/s, no errors: ratio {ratio100:.2f}x: "
        f"**{'PASS' if ok100 else 'FAIL'}** (other concurrencies: {others})",
        f"- Both servers gave the same predictions for the check requests: "
        f"{'yes' if same_predictions else 'NO'}",
        "- \"Server core used by others\": the share of the server's core busy with anything "
        "but the server under test during the cell (other processes, interrupts, loopback "
        "networking); a high share means the numbers, p99 first, are disturbed.",
        "",
        "Workbench prediction log (cumulative, read from /metrics at the end of each cell, "
        "before the backlog drained):",
        "",
        "| rows | connections | rows predicted | log written | log backlog | log dropped |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {s.rows} | {s.connections} | {s.predicted:.0f} | {s.written:.0f} | "
              f"{s.backlog:.0f} | {s.dropped:.0f} |" for s in snapshots]
    statuses = ", ".join(f"{re.sub(r'[^0-9]', '', k)}: {v:.0f}"
                         for k, v in sorted(final.items())
                         if k.startswith("workbench_requests_total{"))
    lines += [
        "",
        f"After draining: rows predicted {metric(final, 'workbench_rows_predicted'):.0f}, "
        f"prediction log written {metric(final, 'workbench_prediction_log_written'):.0f}, "
        f"backlog {metric(final, 'workbench_prediction_log_backlog'):.0f}, "
        f"dropped {metric(final, 'workbench_prediction_log_dropped'):.0f}, "
        f"write errors {metric(final, 'workbench_prediction_log_write_errors'):.0f}; "
        f"requests by status: {statuses or 'none'}.",
    ]
    return "\n".join(lines), ok1 and ok100


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10,
                        help="seconds of load per cell (default 10)")
    parser.add_argument("--connections", default="1,8,32",
                        help="comma-separated wrk connection counts (default 1,8,32; must "
                             f"include {TARGET_CONNECTIONS})")
    parser.add_argument("--server-core", type=int, default=0, help="core for the servers (0)")
    parser.add_argument("--load-core", type=int, default=1, help="core for wrk (1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    connections = sorted({int(c) for c in args.connections.split(",") if c.strip()})
    if args.duration < 1:
        parser.error("--duration must be at least 1")
    if TARGET_CONNECTIONS not in connections or min(connections) < 1:
        parser.error(f"--connections must be positive and include {TARGET_CONNECTIONS}")
    allowed = os.sched_getaffinity(0)
    if args.server_core == args.load_core or not {args.server_core, args.load_core} <= allowed:
        parser.error(f"--server-core and --load-core must be two different cores of {allowed}")
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not on PATH")

    from workbench.config import Settings
    from workbench.platforms import EmbeddedPlatform
    from workbench.pytest_plugin import free_port

    begun = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="workbench-bench-serving-")).resolve()
    platform = None
    servers: list[Server] = []
    try:
        settings = Settings.from_env(environ={}, cwd=folder, home=str(folder / ".workbench"),
                                     port=free_port())
        platform = EmbeddedPlatform(settings, workers=1)
        say(f"benchmark directory: {folder}")
        status = platform.up(say)
        # MLflow may print run links on stdout; keep stdout for the table.
        with contextlib.redirect_stdout(sys.stderr):
            register_iris(settings)
        X, _ = iris_frame()
        bodies = {1: payload(X.iloc[[0]]), 100: payload(X.sample(100, random_state=0))}
        scripts = {rows: write_lua(folder, rows, body) for rows, body in bodies.items()}
        servers = build_servers(settings, folder, args.server_core)
        load_before = os.getloadavg()[0]
        results: dict[str, list[Cell]] = {}
        answers: dict[str, dict[int, list]] = {}
        snapshots: list[LogSnapshot] = []
        final: dict[str, float] = {}
        for server in servers:  # one at a time: only the measured server runs on its core
            server.start(folder)
            answers[server.key] = check_answers(server, bodies)
            wait_until_quiet([status.pid, server.process.pid])
            results[server.key], cells_log = measure(server, scripts, connections,
                                                     args.duration, args.load_core,
                                                     args.server_core)
            if server.key == "workbench":
                snapshots = cells_log
                final = wait_for_backlog(server.url)
            server.stop()
        load_after = os.getloadavg()[0]
        table, _ = report(results, snapshots, final, answers["mlflow"] == answers["workbench"])
    finally:
        for server in servers:
            server.stop()
        if platform is not None:
            platform.down(say)
        if args.keep:
            say(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    import mlflow

    print(f"\nServing on {os.uname().nodename} ({os.cpu_count()} CPUs; servers on core "
          f"{args.server_core}, wrk on core {args.load_core}; 1-min load average "
          f"{load_before:.1f} before, {load_after:.1f} after), Python {sys.version.split()[0]}, "
          f"MLflow {mlflow.__version__}, iris LogisticRegression, one worker each, "
          f"{args.duration} s per cell after a {WARMUP_S} s warm-up, prediction logging on "
          f"(SQLite) for workbench:\n")
    print(table)
    say(f"total benchmark time: {time.perf_counter() - begun:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
