"""``workbench demo``: the whole MLOps cycle in one command, on the embedded platform.

1. example data, one table per month;  2. the platform;  3. train churn v1 (logistic
regression) on January as a job and make it champion;  4. train v2 (gradient boosting) on
January;  5. compare them (the same January test rows) and promote the better one, the other
becomes challenger;  6. retrain the champion's version on February as a retrain proposal of
the demo's policy (``policies/churn.yaml``): judged against the champion on February's
held-out rows, promoted as the policy says;  7. serve the champion over REST, replay March
against it one row per request, and count the logged predictions;  8. drive the policy on a
simulated clock: on 1 April its batch and drift jobs score and check March (ok), on 1 May
April, whose drift triggers a retrain proposal (``churn_v2_20240430`` judged against the
champion on April's held-out rows, compared on the logged traffic, promoted as the policy
says);  9. a summary.

No gate is overridden anywhere: every promotion passes the gates or is not made. Every step
goes through the same library calls as the CLI and the scheduler (``run_policy_job`` is what
a scheduled fire calls, here with the simulated dates), and the demo can run again:
instances that exist are reused (full names are immutable), aliases are re-pointed.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import resources
from workbench.config import Settings
from workbench.demo.data import demo_data_path, write_demo_data
from workbench.errors import PromotionRefused
from workbench.jobs import JobSpec, run_job
from workbench.naming import ModelName
from workbench.progress import Progress
from workbench.registry import Instance, Registry
from workbench.serving.replay import ReplayStats

# Clients at once in the REST step: enough that requests arrive while the model is busy, so
# the server merges them (micro-batching) as it would under production traffic.
REPLAY_CONNECTIONS = 8

INSTANCE = "churn"
TRAIN_MONTH, RETRAIN_MONTH, SCORE_MONTH = "20240131", "20240229", "20240331"
DRIFT_MONTH = "20240430"  # the example data drifts from here on (workbench.demo.data.DRIFT_STARTS)
CONFIGURATIONS = {
    "v1": {"algorithm": "logistic_regression", "features": "all", "hyperparameters": {"C": 1.0}},
    "v2": {"algorithm": "gradient_boosting", "features": "all",
           "hyperparameters": {"max_iter": 200, "learning_rate": 0.05}},
}


#: The demo's retraining policy, written to ``policies/churn.yaml`` when the project has none.
#: The clock below fires its batch and drift jobs; drift triggers a retrain proposal, and a
#: candidate that no gate refuses becomes champion (``champion: auto``), else challenger.
DEMO_POLICY = """\
# The retraining policy of churn (see the README's "Retraining policies").
instance: churn
timezone: UTC
data:
  path: {data_path}
  next_data_date: month_end      # a job fired on 1 May works on April (20240430)
  label_column: churned
schedules:
  batch: {{cron: "0 5 1 * *"}}     # 05:00 on the 1st: score last month with the champion
  drift: {{cron: "0 6 1 * *"}}     # 06:00 on the 1st: check last month for drift
triggers:
  drift: true                    # a drift verdict proposes a retrain
retrain:
  version: champion              # retrain the champion's version, with its parameters
evaluation:
  data: newest_labelled          # champion and candidate judged on the same rows
  holdout: 0.25                  # the train notebook's test_size and seed: rows an instance
  seed: 42                       #   trained on are never used to judge it
promotion:
  challenger: auto
  champion: auto                 # the demo lets a candidate no gate refuses become champion
"""
#: The simulated clock: (when, job) in order. A job fired on the 1st works on the month before.
CLOCK = (
    (dt.datetime(2024, 4, 1, 5, tzinfo=dt.timezone.utc), "batch"),
    (dt.datetime(2024, 4, 1, 6, tzinfo=dt.timezone.utc), "drift"),
    (dt.datetime(2024, 5, 1, 5, tzinfo=dt.timezone.utc), "batch"),
    (dt.datetime(2024, 5, 1, 6, tzinfo=dt.timezone.utc), "drift"),
)


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
    policy: list[str] = field(default_factory=list)
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
        lines.append("Promotions (no gate overridden):")
        lines += [f"  {p}" for p in self.promotions]
        if self.serving:
            s = self.serving
            lines.append(
                f"REST serving ({self.served_model}): {s.requests} requests ({s.errors} errors) in "
                f"{s.seconds:.1f} s over {REPLAY_CONNECTIONS} connections: {s.rate:.0f} req/s, "
                f"p50 {s.p50_ms:.1f} ms, p99 {s.p99_ms:.1f} ms; "
                f"{self.logged_predictions} predictions logged")
        if self.predictions:
            lines.append(f"Batch predictions: {self.predicted_rows} rows -> {self.predictions}")
        if self.policy:
            lines.append("The policy on a simulated clock (policies/churn.yaml):")
            lines += [f"  {line}" for line in self.policy]
        lines += [
            f"MLflow UI: {self.tracking_uri}   (models: {self.tracking_uri}/#/models/{INSTANCE})",
            "The platform keeps running: `workbench platform down` stops it, "
            "`workbench lab` opens the notebooks, `workbench policy proposals churn` shows "
            "the proposals.",
        ]
        return "\n".join(lines)


def run_demo(settings: Settings, progress: Progress = lambda _: None) -> DemoSummary:
    """Run the cycle; returns what it did.

    Raises:
        WorkbenchError: any step that fails, with its own one-line message.
    """
    from workbench.policy.proposals import propose

    started = time.monotonic()
    summary = DemoSummary(settings.tracking_uri, metric=settings.primary_metric)

    progress("[1/9] example data")
    write_demo_data(settings.data_dir, progress=progress)
    policy = demo_policy(settings, progress)

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
            # Never overridden: a refused promotion is not made, and the demo says so.
            progress(f"  gate: {refused.summary}; {alias} stays where it is")
            summary.promotions.append(f"{alias:<10} -- {instance.full_name} refused by a gate")
            return
        summary.promotions.append(f"{alias:<10} -> {instance.full_name}  ({reason})")
        progress(f"  {alias} -> {result.current.full_name}")

    # A champion from an earlier run stays: January's promotions were made then (and a
    # January model would rightly be refused against a newer champion now).
    first_run = not _holds(registry, "champion")
    progress(f"[3/9] train {INSTANCE} v1 on {TRAIN_MONTH}")
    v1 = train_instance("v1", TRAIN_MONTH, CONFIGURATIONS["v1"])
    if first_run:
        promote(v1, "champion", "first model")

    progress(f"[4/9] train {INSTANCE} v2 (another algorithm) on {TRAIN_MONTH}")
    v2 = train_instance("v2", TRAIN_MONTH, CONFIGURATIONS["v2"])

    progress(f"[5/9] compare on {settings.primary_metric} (the same January test rows) and "
             "promote the better one")
    ranked = registry.compare([str(v1.full_name), str(v2.full_name)])
    best, other = ranked[0], ranked[1]
    if first_run:
        promote(best, "champion", f"best {settings.primary_metric} on {TRAIN_MONTH}")
        promote(other, "challenger", "runner-up")
    else:
        progress("  a champion exists from an earlier run: January's promotions stand")

    progress(f"[6/9] retrain the champion's version on {RETRAIN_MONTH}: a retrain proposal, "
             f"judged against the champion on {RETRAIN_MONTH}'s held-out rows")
    proposal = propose(policy, settings, RETRAIN_MONTH, trigger="demo: a new month of data",
                       registry=registry, progress=progress)
    _proposed(summary, proposal)

    progress(f"[7/9] serve {INSTANCE}@champion over REST and replay {SCORE_MONTH} against it")
    serve_and_replay(settings, demo_data_path(settings.data_dir, SCORE_MONTH), summary, progress)

    progress("[8/9] the policy on a simulated clock: batch and drift jobs for March, then April")
    run_clock(policy, settings, summary, progress)

    progress("[9/9] summary")
    summary.instances = [
        i for i in registry.list_instances(INSTANCE) if i.full_name
    ]
    summary.seconds = time.monotonic() - started
    return summary


def demo_policy(settings: Settings, progress: Progress) -> Any:
    """The project's ``policies/churn.yaml``, written from :data:`DEMO_POLICY` when missing.

    Raises:
        PolicyError: the file there has a problem.
    """
    from workbench.policy.schema import load_policy

    path = settings.policies_dir / f"{INSTANCE}.yaml"
    if not path.exists():
        data = demo_data_path(settings.data_dir, "{data_date}")
        try:
            shown = str(data.relative_to(settings.project_root))
        except ValueError:
            shown = str(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(DEMO_POLICY.format(data_path=json.dumps(shown)))
        progress(f"  wrote the demo's retraining policy: {path}")
    return load_policy(path, settings.project_root)


def run_clock(policy: Any, settings: Settings, summary: DemoSummary, progress: Progress) -> None:
    """Fire the policy's jobs at the simulated times of :data:`CLOCK`, as the scheduler
    would fire them at those times (``run_policy_job``), each recorded in the scheduler's
    history (``workbench schedule history``) with the trigger ``demo clock``."""
    from workbench.policy.scheduler import fire_and_record, job_id

    for when, kind in CLOCK:
        outcome = fire_and_record(settings, policy, kind, trigger="demo clock", at=when,
                                  progress=progress)
        if kind == "batch":
            output = settings.home / "predictions" / f"{INSTANCE}_{outcome.data_date}_scored.csv"
            summary.predictions, summary.predicted_rows = output, _rows(output)
        head = f"{when:%Y-%m-%d %H:%M} {job_id(policy.instance, kind):<12} {outcome.data_date}:"
        summary.policy.append(f"{head} {outcome.verdict or outcome.note}")
        if outcome.proposal is not None:
            summary.policy.append(f"  -> {outcome.proposal.summary()}")
            _proposed(summary, outcome.proposal)


def _proposed(summary: DemoSummary, proposal: Any) -> None:
    if proposal.decision in ("champion", "challenger"):
        summary.promotions.append(f"{proposal.decision:<10} -> {proposal.candidate}  "
                                  f"(retrain proposal: {proposal.trigger})")
    else:
        summary.promotions.append(f"{'-':<10} -- {proposal.candidate} proposed, not promoted "
                                  f"({proposal.reason})")


def _holds(registry: Registry, alias: str) -> bool:
    try:
        registry.resolve(f"{INSTANCE}@{alias}")
    except Exception:
        return False
    return True


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


def _rows(path: Path) -> int:
    from workbench.lineage import count_rows

    return count_rows(path) if path.exists() else 0
