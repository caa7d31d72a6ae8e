"""``workbench demo``: the whole MLOps cycle in one command, on the embedded platform.

1. example data, one table per month;  2. the platform;  3. train churn v1 (logistic
regression) on January as a job and make it champion;  4. train v2 (gradient boosting) on
January;  5. compare and promote the better one, the other becomes challenger;  6. retrain
the champion's configuration on February (a new instance of the same version) and promote
it;  7. batch-score March with the champion;  8. serve the champion over REST, replay
March against it one row per request, and count the logged predictions;  9. check March
(the logged predictions) and April (a file) for drift against the champion's reference profile
and say which instance to retrain;  10. a summary.

Every step goes through the same library calls as the CLI, and the demo can run again:
instances that exist are reused (full names are immutable), aliases are re-pointed.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import resources
from workbench.config import Settings
from workbench.demo.data import demo_data_path, write_demo_data
from workbench.errors import PromotionRefused
from workbench.jobs import JobSpec, run_job
from workbench.naming import ModelName
from workbench.registry import Instance, Registry
from workbench.serving.replay import ReplayStats

# Clients at once in the REST step: enough that requests arrive while the model is busy, so
# the server merges them (micro-batching) as it would under production traffic.
REPLAY_CONNECTIONS = 8

Progress = Callable[[str], None]
INSTANCE = "churn"
TRAIN_MONTH, RETRAIN_MONTH, SCORE_MONTH = "20240131", "20240229", "20240331"
DRIFT_MONTH = "20240430"  # the example data drifts from here on (workbench.demo.data.DRIFT_STARTS)
CONFIGURATIONS = {
    "v1": {"algorithm": "logistic_regression", "features": "all", "hyperparameters": {"C": 1.0}},
    "v2": {"algorithm": "gradient_boosting", "features": "all",
           "hyperparameters": {"max_iter": 200, "learning_rate": 0.05}},
}


@dataclass
class DemoSummary:
    """What the demo did, for the closing printout."""

    tracking_uri: str
    instances: list[Instance] = field(default_factory=list)
    promotions: list[str] = field(default_factory=list)
    predictions: Path | None = None
    predicted_rows: int = 0
    serving: ReplayStats | None = None
    served_model: str = ""
    logged_predictions: int = 0
    monitoring: list[str] = field(default_factory=list)
    seconds: float = 0.0
    metric: str = "roc_auc"

    def render(self) -> str:
        lines = [
            "",
            f"MLOps cycle done in {self.seconds:.0f} s. "
            "Model instances ({instance}_{version}_{data_date}):",
        ]
        for instance in self.instances:
            value = instance.metrics.get(self.metric)
            aliases = ", ".join(instance.promotion_aliases) or "-"
            shown = f"{value:.4f}" if value is not None else "-"
            lines.append(f"  {instance.full_name:<22} {self.metric} {shown}   aliases: {aliases}")
        lines.append("Promotions:")
        lines += [f"  {p}" for p in self.promotions]
        if self.predictions:
            lines.append(f"Batch predictions: {self.predicted_rows} rows -> {self.predictions}")
        if self.serving:
            s = self.serving
            lines.append(
                f"REST serving ({self.served_model}): {s.requests} requests ({s.errors} errors) in "
                f"{s.seconds:.1f} s over {REPLAY_CONNECTIONS} connections: {s.rate:.0f} req/s, "
                f"p50 {s.p50_ms:.1f} ms, p99 {s.p99_ms:.1f} ms; "
                f"{self.logged_predictions} predictions logged")
        if self.monitoring:
            lines.append("Drift monitoring:")
            lines += [f"  {line}" for line in self.monitoring]
        lines += [
            f"MLflow UI: {self.tracking_uri}   (models: {self.tracking_uri}/#/models/{INSTANCE})",
            "The platform keeps running: `workbench platform down` stops it, "
            "`workbench lab` opens the notebooks.",
        ]
        return "\n".join(lines)


def run_demo(settings: Settings, progress: Progress = lambda _: None) -> DemoSummary:
    """Run the cycle; returns what it did.

    Raises:
        WorkbenchError: any step that fails, with its own one-line message.
    """
    started = time.monotonic()
    summary = DemoSummary(settings.tracking_uri, metric=settings.primary_metric)

    progress("[1/9] example data")
    write_demo_data(settings.data_dir, progress=progress)

    progress("[2/9] platform")
    if settings.tracking_uri == settings.embedded_tracking_uri:
        from workbench.platforms import EmbeddedPlatform

        EmbeddedPlatform(settings).up(progress)
    registry = Registry(settings)
    train = resources.notebook("train.ipynb", settings.project_root)

    def train_instance(version: str, data_date: str, configuration: dict[str, Any]) -> Instance:
        name = ModelName(INSTANCE, version, data_date)
        try:
            existing = registry.resolve(str(name))
            progress(f"  {name} is registered already (full names are immutable): reusing it")
            return existing
        except Exception:
            pass
        parameters = {
            "instance": INSTANCE, "version": version, "data_date": data_date,
            "data_path": str(demo_data_path(settings.data_dir, data_date)), **configuration,
        }
        progress(f"  training {name} ({configuration['algorithm']}) as a job")
        run_job(JobSpec(train, parameters), settings, progress=progress)
        return registry.resolve(str(name))

    def promote(instance: Instance, alias: str, reason: str) -> None:
        try:
            result = registry.promote(instance, alias, reason=reason, by="workbench demo")
        except PromotionRefused as refused:
            # The demo tells a fixed story (and replays it on a second run), so it overrides
            # the gate, in the open: the audit trail records the override and its reason.
            progress(f"  gate: {refused.summary}; the demo overrides it")
            result = registry.promote(instance, alias, reason=f"{reason} (demo: gate overridden)",
                                      by="workbench demo", override=True)
        summary.promotions.append(f"{alias:<10} -> {instance.full_name}  ({reason})")
        progress(f"  {alias} -> {result.current.full_name}")

    progress(f"[3/9] train {INSTANCE} v1 on {TRAIN_MONTH}")
    v1 = train_instance("v1", TRAIN_MONTH, CONFIGURATIONS["v1"])
    promote(v1, "champion", "first model")

    progress(f"[4/9] train {INSTANCE} v2 (another algorithm) on {TRAIN_MONTH}")
    v2 = train_instance("v2", TRAIN_MONTH, CONFIGURATIONS["v2"])

    progress(f"[5/9] compare on {settings.primary_metric} and promote the better one")
    ranked = registry.compare([str(v1.full_name), str(v2.full_name)])
    best, other = ranked[0], ranked[1]
    promote(best, "champion", f"best {settings.primary_metric} on {TRAIN_MONTH}")
    promote(other, "challenger", "runner-up")

    progress(f"[6/9] retrain the champion's configuration ({best.model_version}) on {RETRAIN_MONTH}")
    retrained = train_instance(str(best.model_version), RETRAIN_MONTH,
                               CONFIGURATIONS[str(best.model_version)])
    promote(retrained, "champion", f"{best.model_version} retrained on newer data")

    progress(f"[7/9] batch-score {SCORE_MONTH} with {INSTANCE}@champion as a job")
    output = settings.home / "predictions" / f"churn_{SCORE_MONTH}_scored.csv"
    batch = resources.notebook("batch_predict.ipynb", settings.project_root)
    run_job(JobSpec(batch, {
        "model_ref": f"{INSTANCE}@champion",
        "input_path": str(demo_data_path(settings.data_dir, SCORE_MONTH)),
        "output_path": str(output),
    }, experiment=f"{INSTANCE}-batch"), settings, progress=progress)
    summary.predictions = output
    summary.predicted_rows = _rows(output)

    progress(f"[8/9] serve {INSTANCE}@champion over REST and replay {SCORE_MONTH} against it")
    serving_started = dt.datetime.now(dt.timezone.utc)
    serve_and_replay(settings, demo_data_path(settings.data_dir, SCORE_MONTH), summary, progress)

    progress(f"[9/9] check {SCORE_MONTH} (logged predictions) and {DRIFT_MONTH} for drift")
    check_months(settings, registry, serving_started, summary, progress)

    summary.instances = [
        i for i in registry.list_instances(INSTANCE) if i.full_name
    ]
    summary.seconds = time.monotonic() - started
    return summary


def serve_and_replay(settings: Settings, table: Path, summary: DemoSummary,
                     progress: Progress) -> None:
    """Start `workbench serve` as its own process, replay ``table``, stop it (SIGTERM
    flushes the prediction log), and count what was logged."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    import pandas as pd

    from workbench.demo.data import FEATURES
    from workbench.errors import WorkbenchError
    from workbench.platforms.embedded import free_port
    from workbench.serving.replay import replay
    from workbench.store.reader import read_predictions

    port = free_port(settings.host)
    url = f"http://{settings.host}:{port}"
    log_file = settings.home / "serve.log"
    started = dt.datetime.now(dt.timezone.utc)
    with open(log_file, "ab") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", "serve", f"{INSTANCE}@champion", "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **settings.as_env()})
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise WorkbenchError(f"the REST server did not start; see {log_file}")
            time.sleep(0.3)
        with urllib.request.urlopen(f"{url}/metadata", timeout=5) as response:
            summary.served_model = json.loads(response.read())["full_name"]
        progress(f"  {summary.served_model} answers at {url}")
        frame = pd.read_csv(table)[list(FEATURES)]
        summary.serving = replay(url, frame, concurrency=REPLAY_CONNECTIONS, progress=progress)
        progress(f"  {summary.serving.requests} requests in {summary.serving.seconds:.1f} s: "
                 f"{summary.serving.rate:.0f} req/s, p50 {summary.serving.p50_ms:.1f} ms, "
                 f"p99 {summary.serving.p99_ms:.1f} ms")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    summary.logged_predictions = len(read_predictions(
        settings.prediction_store_url, summary.served_model, since=started))


def check_months(settings: Settings, registry: Registry, since: dt.datetime,
                 summary: DemoSummary, progress: Progress) -> None:
    """Drift checks against the champion: March as the REST server logged it, April as a file."""
    from workbench.monitoring import check_model_drift

    champion = registry.resolve(f"{INSTANCE}@champion")
    checks = [
        (SCORE_MONTH, "the predictions served", check_model_drift(
            champion, settings, since=since, registry=registry, progress=progress)),
        (DRIFT_MONTH, "a file", check_model_drift(
            champion, settings, current=demo_data_path(settings.data_dir, DRIFT_MONTH),
            registry=registry, progress=progress)),
    ]
    for month, source, check in checks:
        drifted = ", ".join(check.result.drifted) or "-"
        summary.monitoring.append(
            f"{month} ({source}): {check.verdict:<5} drifted features: {drifted}  "
            f"report: {check.run_url or check.report_html}")
    drifting = [month for month, _, check in checks if check.verdict == "drift"]
    if drifting:
        month = drifting[0]
        summary.monitoring.append(
            f"-> retrain {champion.model_version} on {month}: workbench run notebooks/train.ipynb "
            f"-p version {champion.model_version} -p data_date {month} "
            f"-p data_path {demo_data_path(settings.data_dir, month)}   (new instance "
            f"{INSTANCE}_{champion.model_version}_{month}, then compare and promote)")
    else:
        summary.monitoring.append("-> no drift: the champion stays")


def _rows(path: Path) -> int:
    from workbench.lineage import count_rows

    return count_rows(path) if path.exists() else 0
