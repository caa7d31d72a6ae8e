"""Retrain proposals: retrain the chosen version on a new period, judge it against the
champion on the same rows, apply the promotion rule, record and announce the decision.

A proposal is made when a policy's trigger fires (a drift verdict ``drift``, a performance
decay) or its retrain schedule comes round:

1. the chosen version (the champion's, unless the policy names one) is retrained on the
   new ``data_date`` as an ordinary job of the train notebook, with the parameters of the
   instance it retrains (as its run logged them) and the policy's own;
2. champion and candidate are scored on **the same evaluation rows**: the newest labelled
   period up to the new one. Rows an instance was trained on are left out: when the period
   is the one an instance was trained on, only the rows that instance's train notebook held
   out are used, split exactly as the notebook splits them (``train_test_split`` with its
   ``test_size`` and ``seed``, stratified on the label);
3. the two are compared on logged traffic (the agreement rate of
   :func:`workbench.monitoring.compare.replay_model`: the candidate replays what the champion
   answered);
4. the promotion rule runs through :meth:`workbench.registry.Registry.promote`, whose metric
   gate is given the two metrics on the same rows (:class:`workbench.promotion.SameData`);
   no gate is ever overridden. The policy says what may happen without a human:
   ``challenger: auto`` (default) makes the candidate challenger, ``champion: auto`` tries
   champion first;
5. the proposal (trigger, both metrics on the same rows, agreement, decision and why) is
   recorded as a registered-model tag ``workbench.proposal.<id>`` (JSON, never overwritten,
   like the promotion history) and sent to ``settings.webhook_url``, signed with
   HMAC-SHA256, on a background thread with retries (never blocking the job).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench import tasks
from workbench.config import Settings
from workbench.errors import (
    ModelNotFound,
    MonitoringError,
    PromotionRefused,
    WorkbenchError,
)
from workbench.naming import ModelName
from workbench.policy.schema import (
    AUTOMATIC_PARAMETERS,
    CHAMPION,
    NEWEST_LABELLED,
    Policy,
    resolve_notebook,
)
from workbench.progress import Progress
from workbench.promotion import DRIFT_STATUS_TAG, SameData

if TYPE_CHECKING:
    import pandas as pd

    from workbench.monitoring.performance import PerformanceVerdict
    from workbench.registry import Instance, Registry

log = logging.getLogger("workbench.policy")

PROPOSAL_PREFIX = "workbench.proposal."
PROPOSED_BY = "workbench policy"
CHAMPION_DECISION, CHALLENGER_DECISION, NO_DECISION, FAILED = (
    "champion", "challenger", "none", "failed")
#: The metrics a proposal can compute on the evaluation rows, and what each reads.
WEBHOOK_ATTEMPTS = 3
WEBHOOK_BACKOFF_S = 1.0
SIGNATURE_HEADER = "X-Workbench-Signature"


@dataclass(frozen=True)
class Proposal:
    """One retrain proposal, as recorded.

    Attributes:
        id: sortable in time order.
        instance: the registered model.
        trigger: what made it (``drift: churn_v2_20240229 on 20240430``, ``schedule: retrain``).
        data_date: the period retrained on.
        candidate: the retrained instance's full name (None when training failed).
        champion: the champion it was judged against (None when there was none).
        metric: the metric both were scored with.
        candidate_value, champion_value: their values on the same rows.
        evaluation: what the rows were (period, file, how many, which were left out).
        rows: how many rows both were scored on.
        agreement: share of logged requests on which the two agree (None: no traffic).
        agreement_rows: how many logged rows that was measured on.
        decision: ``champion``, ``challenger``, ``none`` (left to a human) or ``failed``.
        reason: why, in one sentence.
        at: when (ISO 8601, UTC).
        run_ids: the jobs' runs (the retrain's).
    """

    id: str
    instance: str
    trigger: str
    data_date: str
    candidate: str | None
    champion: str | None
    metric: str
    candidate_value: float | None
    champion_value: float | None
    evaluation: str
    rows: int
    agreement: float | None
    agreement_rows: int
    decision: str
    reason: str
    at: str
    run_ids: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["run_ids"] = list(self.run_ids)
        return data

    def to_json(self) -> str:
        data = self.as_dict()
        # A registered-model tag holds at most 5000 characters; the reason is the long part.
        data["reason"] = data["reason"][:1500]
        data["trigger"] = data["trigger"][:300]
        return json.dumps(data, sort_keys=True)

    @property
    def tag_key(self) -> str:
        return f"{PROPOSAL_PREFIX}{self.id}"

    @classmethod
    def from_json(cls, text: str) -> Proposal | None:
        """The proposal a tag holds; None for one that is not (never raises)."""
        try:
            data = json.loads(text)
            data["run_ids"] = tuple(data.get("run_ids", ()))
            return cls(**data)
        except (ValueError, TypeError, KeyError):
            return None

    def summary(self) -> str:
        """One line: the decision and the two metrics on the same rows."""
        if self.decision == FAILED:
            return f"proposal {self.candidate or self.data_date}: failed ({self.reason})"
        scores = (f"{self.metric} {_number(self.candidate_value)} vs champion "
                  f"{_number(self.champion_value)} on the same {self.rows} rows")
        agreement = (f", agreement {self.agreement:.1%} on {self.agreement_rows} logged rows"
                     if self.agreement is not None else "")
        return f"proposal {self.candidate}: {self.decision} ({scores}{agreement})"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


# -- reading the registry ------------------------------------------------------------------------
def _registry(settings: Settings, registry: Registry | None) -> Registry:
    from workbench.registry import Registry

    return registry if registry is not None else Registry(settings)


def champion_of(policy: Policy, settings: Settings, registry: Registry | None = None) -> Instance:
    """The instance's champion.

    Raises:
        ModelNotFound: nothing holds ``<instance>@champion`` (promote one first).
    """
    try:
        return _registry(settings, registry).resolve(f"{policy.instance}@{CHAMPION}")
    except ModelNotFound:
        raise ModelNotFound(
            f"{policy.instance} has no champion for the policy to work with; promote one: "
            f"workbench models promote {policy.instance}_v1_YYYYMMDD --alias champion") from None


def drift_verdict(instance: Instance, settings: Settings, registry: Registry | None = None) -> str:
    """The verdict of ``instance``'s last drift check (``unchecked`` when it has none)."""
    fresh = _registry(settings, registry).resolve(f"models:/{instance.registered_model}/"
                                                  f"{instance.number}")
    return fresh.tags.get(DRIFT_STATUS_TAG) or "unchecked"


def list_proposals(settings: Settings, instance: str,
                   registry: Registry | None = None) -> list[Proposal]:
    """Every proposal recorded for ``instance``, oldest first.

    Raises:
        ModelNotFound: no registered model of that name.
    """
    reg = _registry(settings, registry)
    model = reg._registered_model(instance)
    if model is None:
        raise ModelNotFound(reg._no_model_message(instance))
    found = [p for key, value in (model.tags or {}).items()
             if key.startswith(PROPOSAL_PREFIX) and (p := Proposal.from_json(value)) is not None]
    return sorted(found, key=lambda p: p.id)


# -- the performance trigger ---------------------------------------------------------------------
def performance_verdict(policy: Policy, settings: Settings, data_date: str,
                        check: Callable[..., Any] | None = None) -> PerformanceVerdict:
    """Ask the performance check whether the champion's metric decayed.

    The check is :func:`workbench.monitoring.performance.performance_trigger` (``check``
    replaces it in tests), called with the champion, the trigger's metric (default: the
    primary metric), its threshold (``below``), margin (``drop``) and window.

    Raises:
        WorkbenchError: the policy has no performance trigger (its schedule needs one), or
            the check failed (no store, no tracking server, a bad metric).
    """
    trigger = policy.triggers.performance
    if trigger is None:
        raise WorkbenchError(f"policy {policy.instance}: a performance check needs "
                             "triggers.performance (below and/or drop)")
    if check is None:
        from workbench.monitoring.performance import performance_trigger

        check = performance_trigger
    return check(f"{policy.instance}@{CHAMPION}", settings,
                 metric=trigger.metric or settings.primary_metric, threshold=trigger.below,
                 margin=trigger.drop, window=trigger.window)


# -- making a proposal ---------------------------------------------------------------------------
def propose(
    policy: Policy,
    settings: Settings,
    data_date: str,
    *,
    trigger: str,
    tags: Mapping[str, str] | None = None,
    registry: Registry | None = None,
    progress: Progress | None = None,
) -> Proposal:
    """Retrain, judge on the same rows, apply the promotion rule, record, announce.

    Returns:
        The recorded proposal.

    Raises:
        JobFailed: the retrain job failed (its run is FAILED; the proposal is recorded as
            ``failed`` first, as for every error below).
        WorkbenchError: no labelled period to judge on, a model that cannot score the rows,
            the tracking server failed (recorded as ``failed`` when the candidate exists).
    """
    say = progress or log.info
    reg = _registry(settings, registry)
    at = dt.datetime.now(dt.timezone.utc)
    ident = f"{at:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"
    champion = _champion_or_none(policy, reg)
    version = (champion.model_version if policy.retrain.version == CHAMPION and champion
               else policy.retrain.version)
    if version is None or version == CHAMPION:
        raise WorkbenchError(f"{policy.instance} has no champion whose version the policy can "
                             "retrain; name one in the policy (retrain: {version: v1})")
    name = ModelName(policy.instance, version, data_date)
    base: dict[str, Any] = dict(
        id=ident, instance=policy.instance, trigger=trigger, data_date=data_date,
        champion=champion.label if champion else None, metric=settings.primary_metric,
        at=at.isoformat(timespec="seconds"))
    run_ids: tuple[str, ...] = ()
    try:
        candidate, run_ids, parameters = _retrain(policy, settings, reg, name, champion,
                                                  tags or {}, say)
    except WorkbenchError as failed:  # the job failed, or could not start
        run_id = getattr(failed, "run_id", None)
        _record(reg, settings, Proposal(
            **base, candidate=str(name), candidate_value=None, champion_value=None,
            evaluation="-", rows=0, agreement=None, agreement_rows=0, decision=FAILED,
            reason=_first_line(failed), run_ids=(run_id,) if run_id else ()))
        raise
    try:
        judged = _judge(policy, settings, reg, candidate, champion, parameters, say)
    except WorkbenchError as error:
        _record(reg, settings, Proposal(
            **base, candidate=candidate.label, candidate_value=None, champion_value=None,
            evaluation="-", rows=0, agreement=None, agreement_rows=0, decision=FAILED,
            reason=_first_line(error), run_ids=run_ids))
        raise
    decision, reason = _decide(policy, settings, reg, candidate, champion, judged, trigger)
    proposal = Proposal(**base, candidate=candidate.label, candidate_value=judged.candidate,
                        champion_value=judged.current if champion else None,
                        evaluation=judged.data, rows=judged.rows, agreement=judged.agreement,
                        agreement_rows=judged.agreement_rows, decision=decision, reason=reason,
                        run_ids=run_ids)
    proposal = _record(reg, settings, proposal)
    say(proposal.summary())
    return proposal


def _champion_or_none(policy: Policy, registry: Registry) -> Instance | None:
    try:
        return registry.resolve(f"{policy.instance}@{CHAMPION}")
    except ModelNotFound:
        return None


def _retrain(policy: Policy, settings: Settings, registry: Registry, name: ModelName,
             champion: Instance | None, tags: Mapping[str, str], say: Progress
             ) -> tuple[Instance, tuple[str, ...], dict[str, Any]]:
    """The candidate: registered already (full names are immutable), or trained now."""
    from workbench.jobs import JobSpec, declared_parameters, run_job

    notebook = resolve_notebook(policy.retrain.notebook, settings.project_root)
    declared = declared_parameters(notebook)
    source = champion if champion is not None and champion.model_version == name.version \
        else _newest_of(registry, policy.instance, name.version)
    parameters: dict[str, Any] = {
        key: value for key, value in (source.params if source else {}).items()
        if key in declared and key not in AUTOMATIC_PARAMETERS["retrain"]}
    # The split the evaluation leaves out is the one the policy says the notebook makes.
    for key, value in (("test_size", policy.evaluation.holdout), ("seed", policy.evaluation.seed)):
        if key in declared:
            parameters[key] = value
    parameters.update(policy.retrain.parameters)
    try:
        existing = registry.resolve(str(name))
    except ModelNotFound:
        existing = None
    if existing is not None:
        say(f"  {name} is registered already (full names are immutable): judging it")
        return existing, (), {**parameters, **_split_of(existing)}
    parameters.update({"instance": name.instance, "version": name.version,
                       "data_date": name.data_date,
                       "data_path": str(policy.data_path(name.data_date, settings.project_root))})
    say(f"  retraining {name.version} on {name.data_date} as a job -> {name}")
    result = run_job(JobSpec(notebook, parameters,
                             executor=policy.retrain.executor or settings.executor,
                             timeout=policy.retrain.timeout, tags=dict(tags)),
                     settings, progress=say)
    return registry.resolve(str(name)), (result.run_id,), parameters


def _newest_of(registry: Registry, instance: str, version: str) -> Instance | None:
    mine = [i for i in registry.list_instances(instance) if i.model_version == version]
    return max(mine, key=lambda i: (i.data_date or "", i.number)) if mine else None


def _split_of(instance: Instance) -> dict[str, Any]:
    from workbench.jobs.params import parse_literal

    return {k: parse_literal(instance.params[k]) for k in ("test_size", "seed")
            if k in instance.params}


@dataclass(frozen=True)
class _Judged:
    candidate: float
    current: float
    current_number: int
    rows: int
    data: str
    agreement: float | None = None
    agreement_rows: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)


def _judge(policy: Policy, settings: Settings, registry: Registry, candidate: Instance,
           champion: Instance | None, parameters: Mapping[str, Any], say: Progress) -> _Judged:
    from workbench.predict import LoadedModel

    period, path = evaluation_period(policy, settings, candidate.data_date or "")
    frame = _read(path)
    label = policy.data.label_column
    left_out: list[str] = []
    keep = frame.index
    for instance, split in ((candidate, parameters), (champion, None)):
        if instance is None or instance.data_date != period:
            continue
        split = split if split is not None else _split_of(instance)
        keep = keep.intersection(heldout_index(
            frame, label, float(split.get("test_size", policy.evaluation.holdout)),
            int(split.get("seed", policy.evaluation.seed)),
            stratify=instance.tags.get(tasks.TASK_TAG) != tasks.REGRESSION))
        left_out.append(instance.label)
    rows = frame.loc[keep]
    rows = rows[rows[label].notna()]
    if rows.empty:
        raise WorkbenchError(f"no labelled rows to judge {candidate.label} on in {path}")
    what = (f"{period}: {path.name}, {len(rows)} labelled rows"
            + (f" (only the rows {' and '.join(left_out)} held out in training)" if left_out else ""))
    say(f"  judging on {what}")
    metric = settings.primary_metric
    mine = score(metric, rows[label], LoadedModel(candidate, settings).predict(rows))
    theirs = (score(metric, rows[label], LoadedModel(champion, settings).predict(rows))
              if champion is not None else float("nan"))
    agreement: float | None = None
    paired, notes = 0, tuple[str, ...]()
    if champion is not None:
        agreement, paired, notes = _agreement(policy, settings, registry, candidate, champion, say)
    return _Judged(mine, theirs, champion.number if champion else -1, len(rows), what,
                   agreement, paired, notes)


def evaluation_period(policy: Policy, settings: Settings, up_to: str) -> tuple[str, Path]:
    """The period both are judged on: the policy's fixed one, or the newest labelled one
    up to ``up_to`` (at most ``evaluation.lookback`` periods back).

    Raises:
        WorkbenchError: no such period has a file with labels.
    """
    label = policy.data.label_column
    if policy.evaluation.data != NEWEST_LABELLED:
        period = policy.evaluation.data
        path = policy.data_path(period, settings.project_root)
        if not _labelled(path, label):
            raise WorkbenchError(f"the evaluation period {period} has no labelled file "
                                 f"({path}, column {label!r})")
        return period, path
    period = up_to
    tried = []
    for _ in range(policy.evaluation.lookback):
        path = policy.data_path(period, settings.project_root)
        if _labelled(path, label):
            return period, path
        tried.append(period)
        period = policy.previous_data_date(period)
    raise WorkbenchError(
        f"no labelled period to judge on: none of {', '.join(tried)} has a file with labels in "
        f"{label!r} ({policy.data.path}); labels arrive later, retrain once they have")


def _labelled(path: Path, label: str) -> bool:
    if not path.is_file():
        return False
    try:
        frame = _read(path)
    except WorkbenchError:
        return False
    return label in frame.columns and bool(frame[label].notna().any())


def _read(path: Path) -> pd.DataFrame:
    from workbench.predict import read_table

    return read_table(path)


def heldout_index(frame: pd.DataFrame, label: str, test_size: float, seed: int, *,
                  stratify: bool = True) -> Any:
    """The index of the rows a train notebook holds out: ``train_test_split(X, y,
    test_size=..., random_state=seed, stratify=y)`` (a classifier's; a regressor's notebook
    does not stratify) picks rows from the row count, the labels and the seed only, so
    splitting the index the same way gives the same rows."""
    from sklearn.model_selection import train_test_split

    _, test = train_test_split(frame.index, test_size=test_size, random_state=seed,
                               stratify=frame[label] if stratify else None)
    return test


def score(metric: str, truth: Any, scored: pd.DataFrame) -> float:
    """``metric`` of scored rows (``prediction``, and ``probability`` where the model has one),
    computed as ``workbench monitor performance`` computes it from labels (classification,
    multiclass and regression metrics alike).

    Raises:
        WorkbenchError: a metric the proposal cannot compute, a model without probabilities
            for a metric that needs them, or rows the metric has no value for (one class).
    """
    from workbench.monitoring.performance import PROBABILITY_METRICS, compute_metric

    if metric in PROBABILITY_METRICS and "probability" not in scored.columns:
        raise WorkbenchError(f"{metric} needs probabilities; {scored['model_name'].iloc[0]} "
                             "has no predict_proba")
    probability = scored["probability"].to_numpy() if "probability" in scored.columns else None
    try:
        value, note = compute_metric(metric, truth.to_numpy(), scored["prediction"].to_numpy(),
                                     probability)
    except MonitoringError as error:
        raise WorkbenchError(f"a proposal cannot compute the primary metric {metric!r}: "
                             f"{error}") from error
    if value is None:
        raise WorkbenchError(f"no {metric} on the evaluation rows: {note}")
    return value


def _agreement(policy: Policy, settings: Settings, registry: Registry, candidate: Instance,
               champion: Instance, say: Progress) -> tuple[float | None, int, tuple[str, ...]]:
    """Replay what the champion answered through the candidate; the share that agree."""
    from workbench.monitoring.compare import replay_model

    try:
        comparison = replay_model(candidate, settings, against=champion,
                                  since=policy.evaluation.traffic_since, registry=registry)
    except WorkbenchError as error:  # no traffic in the window, a store that cannot be read
        note = f"no agreement on logged traffic ({_first_line(error)})"
        say(f"  {note}")
        return None, 0, (note,)
    if comparison.agreement is not None:
        say(f"  agreement with {champion.label} on {comparison.paired} logged rows: "
            f"{comparison.agreement:.1%}")
    return comparison.agreement, comparison.paired, ()


def _decide(policy: Policy, settings: Settings, registry: Registry, candidate: Instance,
            champion: Instance | None, judged: _Judged, trigger: str) -> tuple[str, str]:
    """Apply the promotion rule: champion if the policy says auto and no gate refuses, else
    challenger if auto and no gate refuses, else nothing (a human decides)."""
    metric = settings.primary_metric
    measured = (f"{metric} {judged.candidate:.4f} against the champion's "
                f"{judged.current:.4f} on the same {judged.rows} rows of {judged.data}"
                if champion is not None else f"{metric} {judged.candidate:.4f} on {judged.data}")
    same = (SameData(metric, judged.candidate, judged.current, judged.current_number,
                     judged.rows, judged.data) if champion is not None else None)
    reason = f"{trigger}; {measured}"
    refusals: list[str] = []
    for alias in (CHAMPION_DECISION, CHALLENGER_DECISION):
        if getattr(policy.promotion, alias) != "auto":
            continue
        try:
            registry.promote(candidate, alias, reason=f"retrain proposal: {reason}",
                             by=PROPOSED_BY, same_data=same)
        except PromotionRefused as refused:
            refusals.append(refused.summary)
            continue
        why = f"{alias} (policy: {alias} auto); {measured}"
        if refusals:
            why += f"; not champion: {refusals[0]}"
        return alias, why
    if refusals:
        return NO_DECISION, f"refused by the gates: {'; '.join(refusals)}; {measured}"
    return NO_DECISION, (f"left to a human (policy: champion and challenger manual); {measured}; "
                         f"workbench models promote {candidate.label} --alias challenger")


def _record(registry: Registry, settings: Settings, proposal: Proposal) -> Proposal:
    """Keep the proposal (a registered-model tag, never overwritten) and announce it."""
    from workbench import client as tracking_client

    # When the decision was made (the id keeps when the proposal began).
    proposal = dataclasses.replace(
        proposal, at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    with tracking_client.mlflow_errors(settings, f"recording proposal {proposal.id}"):
        registry.client.set_registered_model_tag(proposal.instance, proposal.tag_key,
                                                 proposal.to_json())
    notify(settings, proposal)
    return proposal


# -- the webhook ---------------------------------------------------------------------------------
def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def notify(settings: Settings, proposal: Proposal, *, attempts: int = WEBHOOK_ATTEMPTS,
           backoff_s: float = WEBHOOK_BACKOFF_S) -> threading.Thread | None:
    """POST the proposal to ``settings.webhook_url`` on a background thread.

    The body is JSON (``{"event": "retrain_proposal", "proposal": {...}}``) signed with
    HMAC-SHA256 under ``settings.webhook_secret`` in the ``X-Workbench-Signature`` header.
    A failed delivery is retried (``attempts`` in all, waiting ``backoff_s``, then twice
    that, ...) and every failure is logged; nothing is raised, nothing waits for it.

    Returns:
        The delivering thread (join it to wait), or None when no URL is set or no secret
        is (a proposal is never sent unsigned; that is logged).
    """
    url = settings.webhook_url
    if not url:
        return None
    secret = settings.webhook_secret.get_secret_value()
    if not secret:
        log.error("webhook_url is set but webhook_secret is empty: proposal %s not sent "
                  "(set WORKBENCH_WEBHOOK_SECRET; bodies are always signed)", proposal.id)
        return None
    body = json.dumps({"event": "retrain_proposal", "proposal": proposal.as_dict()},
                      sort_keys=True).encode()
    thread = threading.Thread(target=_deliver, args=(url, body, sign(secret, body), attempts,
                                                     backoff_s, proposal.id),
                              name=f"webhook-{proposal.id}", daemon=True)
    thread.start()
    return thread


def _deliver(url: str, body: bytes, signature: str, attempts: int, backoff_s: float,
             ident: str) -> bool:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", SIGNATURE_HEADER: signature,
        "X-Workbench-Event": "retrain_proposal"})
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                log.info("webhook: proposal %s delivered to %s (HTTP %s, attempt %d)",
                         ident, url, response.status, attempt)
                return True
        except (urllib.error.URLError, OSError, ValueError) as error:
            log.warning("webhook: proposal %s to %s failed (attempt %d of %d): %s",
                        ident, url, attempt, attempts, _first_line(error))
        if attempt < attempts:
            time.sleep(backoff_s * 2 ** (attempt - 1))
    log.error("webhook: proposal %s was not delivered to %s after %d attempts",
              ident, url, attempts)
    return False


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
