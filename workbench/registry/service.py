"""The model registry under the naming convention: register, resolve, list, compare, promote.

In MLflow terms: the registered model is the *instance* (``churn``); each training creates
one MLflow model version, tagged ``model_name`` / ``model_version`` / ``data_date`` and given
an alias equal to its full name (``churn_v2_20240131``), which is how full names resolve
and why they are immutable. ``champion`` and ``challenger`` are ordinary aliases moved by
``promote`` and ``rollback``; each move first appends a record to the registered model's
history (one tag per promotion, never overwritten), then moves the alias.

Every MLflow call runs inside :func:`workbench.client.mlflow_errors`: only MLflow's "does not
exist" means not found, anything else is a :class:`~workbench.errors.TrackingError` naming the
server. This is the engine under the CLI, the magics and the widgets.
"""
from __future__ import annotations

import datetime as dt
import getpass
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench import client as tracking_client
from workbench import lineage, tasks
from workbench._version import __version__
from workbench.config import Settings
from workbench.errors import (
    InvalidModelName,
    ModelAlreadyRegistered,
    ModelNotFound,
    OverrideNeedsReason,
    PromotionRefused,
)
from workbench.naming import PROMOTION_ALIASES, ModelName, ModelRef, parse_ref
from workbench.promotion import GateFailure, SameData, check_gates
from workbench.registry import model_io
from workbench.registry.types import (
    AUDIT_PREFIX,
    DATA_DATE_TAG,
    MODEL_NAME_TAG,
    MODEL_VERSION_TAG,
    PROFILE_TAG,
    PROMOTE,
    ROLLBACK,
    SERIALIZATION_TAG,
    HistoryRecord,
    Instance,
    Promotion,
    history_from_tags,
    rollback_source,
)

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

#: Page sizes for listing; tests pass small ones to cross page boundaries.
MODELS_PAGE = 100
VERSIONS_PAGE = 1000
#: How long a good answer from ``/health`` is trusted before the server is probed again.
PROBE_INTERVAL_S = 1.0
#: Run ids per ``search_runs`` request (the filter is ``attributes.run_id IN (...)``).
RUNS_BATCH = 100


class Registry:
    """Register, resolve and promote model instances.

    Args:
        settings: tracking URI, primary metric and its direction.
        client: an MlflowClient (built from the settings when omitted); tests inject one.
        page_size: registered models / model versions asked for per request (default
            :data:`MODELS_PAGE` / :data:`VERSIONS_PAGE`).

    Raises:
        TrackingError: no client was given and the HTTP tracking server does not answer
            (checked here and again before calls, at most once per ``probe_interval``
            seconds, so a face never waits on MLflow's retries).
    """

    def __init__(self, settings: Settings, client: MlflowClient | None = None,
                 page_size: int | None = None) -> None:
        from workbench.tracking import make_client

        self.settings = settings
        # Only a client built here is probed: an injected one (tests, fakes) may have no server.
        self._probing = client is None and settings.tracking_uri.startswith(("http://", "https://"))
        #: Seconds a good probe stays good; a listing makes many calls, one probe is enough.
        self.probe_interval = PROBE_INTERVAL_S
        self._probed_at = -float("inf")
        self._probe()
        self.client = client if client is not None else make_client(settings)
        self.models_page = page_size or MODELS_PAGE
        self.versions_page = page_size or VERSIONS_PAGE

    def _probe(self) -> None:
        # MLflow retries a dead server with backoff for minutes; /health answers in
        # milliseconds, or the face says in seconds that nothing is there. A Registry lives
        # long in a widget or a kernel, so the server is probed again, not only at the start.
        if self._probing and time.monotonic() - self._probed_at >= self.probe_interval:
            tracking_client.require_server(self.settings)
            self._probed_at = time.monotonic()

    def _calling(self, doing: str) -> AbstractContextManager[None]:
        self._probe()
        return tracking_client.mlflow_errors(self.settings, doing)

    # -- registering -------------------------------------------------------------------------
    def register(
        self,
        model: Any,
        name: ModelName,
        *,
        run_id: str,
        input_example: pd.DataFrame | None = None,
        description: str | None = None,
    ) -> Instance:
        """Log ``model`` under ``run_id`` and register it as the instance ``name``.

        The signature is inferred from ``input_example`` (and the model's predictions on it).
        The version is tagged with the model's task and the primary metric's direction in
        this project (see :func:`task_tags`). So is the reference profile drift checks
        compare with (``reference_profile.json``
        among the model's files, named by the model version tag ``workbench.profile``); a
        frame that cannot be profiled only costs the profile, with a warning. The model file
        is skops where it can be, cloudpickle otherwise (tag ``workbench.serialization``).

        Two registrations of one full name at once: both create a version tagged with the
        name, then look; the lower MLflow version wins and the other deletes its own version
        and logged model before it raises, so no orphan remains.

        Raises:
            ModelAlreadyRegistered: ``name`` exists already (full names are immutable).
            UnsupportedModel: ``model`` is neither a scikit-learn estimator nor a
                ``mlflow.pyfunc.PythonModel``.
            TrackingError: the tracking server failed or cannot be reached.
        """
        full = str(name)
        existing = self._by_alias(name.instance, full)
        if existing is not None:
            raise self._already(name, int(existing.version))
        with self._calling(f"reading run {run_id}"):
            run = self.client.get_run(run_id)
        tags = {
            MODEL_NAME_TAG: full,
            MODEL_VERSION_TAG: name.version,
            DATA_DATE_TAG: name.data_date,
            lineage.WORKBENCH_VERSION: __version__,
        }
        tags.update({k: v for k, v in run.data.tags.items() if k in lineage.MODEL_VERSION_LINEAGE_KEYS})

        described = task_tags(model, self.settings)
        with tempfile.TemporaryDirectory(prefix="workbench-model-") as tmp:
            local = Path(tmp) / "model"
            saved = model_io.save_model(model, local, input_example)
            profiled = (input_example is not None
                        and model_io.save_profile(local, input_example, saved.outputs,
                                                  described.get(tasks.TASK_TAG)))
            with self._calling(f"logging the model files of {full}"):
                logged = self.client.create_logged_model(
                    run.info.experiment_id, name=full, source_run_id=run_id, tags=tags
                )
                try:
                    self.client.log_model_artifacts(logged.model_id, str(local))
                except BaseException:
                    self.client.finalize_logged_model(logged.model_id, "FAILED")
                    raise
                self.client.finalize_logged_model(logged.model_id, "READY")
        with self._calling(f"registering {full}"):
            self._log_model_output(run_id, logged.model_id)
            self._ensure_registered_model(name.instance)
            version_tags = {**tags, SERIALIZATION_TAG: saved.serialization, **described}
            if profiled:
                version_tags[PROFILE_TAG] = model_io.profile_file()
            version = self.client.create_model_version(
                name.instance, source=f"models:/{logged.model_id}", run_id=run_id,
                tags=version_tags, description=description, model_id=logged.model_id,
                await_creation_for=0,
            )
        winner = self._winner(name.instance, full)
        if winner is not None and winner != int(version.version):
            self._withdraw(name.instance, str(version.version), logged.model_id)
            raise self._already(name, winner)
        with self._calling(f"registering {full}"):
            self.client.set_registered_model_alias(name.instance, full, version.version)
        return self.resolve(f"models:/{name.instance}/{version.version}")

    def _winner(self, instance: str, full: str) -> int | None:
        """The lowest MLflow version tagged with ``full``: the registration that counts."""
        with self._calling(f"checking who registered {full}"):
            numbers = [int(v.version) for v in self._versions(
                f"name = '{_quote(instance)}' and tag.{MODEL_NAME_TAG} = '{_quote(full)}'")]
        return min(numbers) if numbers else None

    def _withdraw(self, instance: str, number: str, model_id: str) -> None:
        # The losing registration removes what it created, so the model holds one version.
        with self._calling(f"removing the duplicate version {number} of '{instance}'"):
            self.client.delete_model_version(instance, number)
            self.client.delete_logged_model(model_id)

    def _already(self, name: ModelName, number: int) -> ModelAlreadyRegistered:
        return ModelAlreadyRegistered(
            f"{name} is already registered (MLflow version {number} of "
            f"'{name.instance}'); a full name is immutable: retrain with a new data date "
            f"or register a new version (e.g. {name.instance}_v{name.version_number + 1}_"
            f"{name.data_date})"
        )

    def _log_model_output(self, run_id: str, model_id: str) -> None:
        from mlflow.entities import LoggedModelOutput

        # Shows the model under the run's outputs in the MLflow UI.
        self.client.log_outputs(run_id, [LoggedModelOutput(model_id=model_id, step=0)])

    def _ensure_registered_model(self, instance: str) -> None:
        if self._registered_model(instance) is not None:
            return
        try:
            self.client.create_registered_model(
                instance,
                tags={"workbench.convention": "{instance}_{version}_{data_date}"},
                description=f"Model instances of '{instance}', named {instance}_<version>_<data_date>.",
            )
        except Exception as error:
            # Another registration created it in between: that is what was wanted.
            if getattr(error, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                raise

    # -- resolving ---------------------------------------------------------------------------
    def resolve(self, ref: str | ModelRef | ModelName | Instance) -> Instance:
        """The instance a full name, ``instance@alias`` or ``models:/`` URI points at.

        Raises:
            InvalidModelName: the reference is malformed.
            ModelNotFound: it is well formed but points at nothing.
            TrackingError: the tracking server failed or cannot be reached.
        """
        if isinstance(ref, Instance):
            return ref
        parsed = parse_ref(str(ref)) if not isinstance(ref, ModelRef) else ref
        version: ModelVersion | None
        if parsed.number is not None:
            with self._calling(f"resolving {parsed}"):
                try:
                    version = self.client.get_model_version(parsed.registered_model,
                                                            str(parsed.number))
                except Exception as error:
                    if not tracking_client.is_not_found(error):
                        raise
                    version = None
        else:
            version = self._by_alias(parsed.registered_model, parsed.alias or "")
        if version is None:
            raise ModelNotFound(self._not_found_message(parsed))
        return self._instances([version])[0]

    def _not_found_message(self, ref: ModelRef) -> str:
        if self._registered_model(ref.registered_model) is None:
            return self._no_model_message(ref.registered_model)
        what = f"version {ref.number}" if ref.number is not None else f"alias '{ref.alias}'"
        return (
            f"'{ref.registered_model}' has no {what}; "
            f"`workbench models list {ref.registered_model}` shows its instances"
        )

    def _no_model_message(self, name: str) -> str:
        return (f"no registered model '{name}' at {self.settings.tracking_uri}; "
                "`workbench models list` shows what is registered")

    def _registered_model(self, name: str) -> RegisteredModel | None:
        """The registered model ``name``, None when it does not exist."""
        with self._calling(f"reading registered model '{name}'"):
            try:
                return self.client.get_registered_model(name)
            except Exception as error:
                if tracking_client.is_not_found(error):
                    return None
                raise

    def _by_alias(self, registered_model: str, alias: str) -> ModelVersion | None:
        # Read from the registered model's alias map: MLflow reports a missing alias as
        # INVALID_PARAMETER_VALUE, which cannot be told apart from a real bad request.
        model = self._registered_model(registered_model)
        if model is None:
            return None
        number = (model.aliases or {}).get(alias)
        if number is None:
            return None
        with self._calling(f"reading {registered_model}@{alias}"):
            try:
                version = self.client.get_model_version(registered_model, str(number))
            except Exception as error:
                if tracking_client.is_not_found(error):
                    return None  # deleted between the two reads
                raise
        version.aliases = [a for a, n in (model.aliases or {}).items() if str(n) == str(number)]
        return version

    def _instances(self, versions: list[ModelVersion], with_runs: bool = True) -> list[Instance]:
        """Instances of ``versions``, their runs' metrics read in batches (not one per run)."""
        runs = self._runs({v.run_id for v in versions if v.run_id}) if with_runs else {}
        return [_instance(v, runs.get(v.run_id or "")) for v in versions]

    def _runs(self, run_ids: set[str]) -> dict[str, Any]:
        """The runs ``run_ids`` name (a deleted one is missing), ``RUNS_BATCH`` per request."""
        if not run_ids:
            return {}
        if len(run_ids) == 1:
            return self._one_run(next(iter(run_ids)))
        from mlflow.entities import ViewType

        with self._calling("reading the runs that trained the models"):
            experiments = [e.experiment_id for e in _pages(
                lambda token: self.client.search_experiments(
                    view_type=ViewType.ALL, max_results=1000, page_token=token))]
            found: dict[str, Any] = {}
            ordered = sorted(run_ids)
            for start in range(0, len(ordered), RUNS_BATCH):
                chunk = ordered[start:start + RUNS_BATCH]
                in_list = ", ".join(f"'{_quote(r)}'" for r in chunk)
                for run in _pages(lambda token, in_list=in_list: self.client.search_runs(
                        experiments, filter_string=f"attributes.run_id IN ({in_list})",
                        run_view_type=ViewType.ALL, max_results=1000, page_token=token)):
                    found[run.info.run_id] = run
        return found

    def _one_run(self, run_id: str) -> dict[str, Any]:
        # One run (resolving one instance): a direct read beats listing the experiments.
        with self._calling(f"reading run {run_id}"):
            try:
                return {run_id: self.client.get_run(run_id)}
            except Exception as error:
                if tracking_client.is_not_found(error):
                    return {}
                raise

    # -- listing and comparing -----------------------------------------------------------------
    def registered_models(self) -> list[str]:
        """The names of every registered model, every page of them.

        Raises:
            TrackingError: the tracking server failed or cannot be reached.
        """
        return sorted(m.name for m in self._all_registered_models())

    def _all_registered_models(self) -> list[RegisteredModel]:
        with self._calling("listing registered models"):
            return list(_pages(lambda token: self.client.search_registered_models(
                max_results=self.models_page, page_token=token)))

    def _versions(self, filter_string: str) -> list[ModelVersion]:
        return list(_pages(lambda token: self.client.search_model_versions(
            filter_string, max_results=self.versions_page, page_token=token)))

    def list_instances(self, registered_model: str | None = None) -> list[Instance]:
        """Every instance of one registered model (or of all), newest first.

        One paged search of versions per registered model and one run search per
        ``RUNS_BATCH`` runs, however many versions there are.

        Raises:
            ModelNotFound: ``registered_model`` does not exist.
            TrackingError: the tracking server failed or cannot be reached.
        """
        if registered_model:
            model = self._registered_model(registered_model)
            if model is None:
                raise ModelNotFound(self._no_model_message(registered_model))
            models = [model]
        else:
            models = self._all_registered_models()
        versions: list[ModelVersion] = []
        for model in models:
            with self._calling(f"listing the versions of '{model.name}'"):
                found = self._versions(f"name = '{_quote(model.name)}'")
            # search_model_versions leaves aliases out; the registered model has them.
            aliases: dict[str, list[str]] = {}
            for alias, number in (model.aliases or {}).items():
                aliases.setdefault(str(number), []).append(alias)
            for version in found:
                version.aliases = aliases.get(str(version.version), [])
            versions.extend(found)
        return sorted(self._instances(versions), key=lambda i: (i.registered_model, -i.number))

    def compare(
        self, refs: Iterable[str] | str, metric: str | None = None
    ) -> list[Instance]:
        """Instances sorted best first by ``metric`` (the primary metric by default).

        ``refs`` is a registered model name (all its instances) or a list of references.
        Instances without the metric (or with NaN) sort last. Best is in the metric's
        direction (:func:`workbench.tasks.greater_is_better`: the settings for their primary
        metric, else what the versions recorded, else the name: ``rmse`` lowest first).

        Raises:
            ModelNotFound, InvalidModelName: a reference points at nothing or is malformed.
            TrackingError: the tracking server failed or cannot be reached.
        """
        if isinstance(refs, str):
            instances = self.list_instances(refs)
        else:
            instances = [self.resolve(r) for r in refs]
        metric = metric or tasks.primary_metric(self.settings, instances)
        sign = -1.0 if tasks.greater_is_better(metric, self.settings, instances) else 1.0

        def key(i: Instance) -> tuple[bool, float, int]:
            value = i.metrics.get(metric)
            usable = value is not None and value == value
            return (not usable, sign * value if usable and value is not None else 0.0, -i.number)

        return sorted(instances, key=key)

    def best(self, refs: Iterable[str] | str, metric: str | None = None) -> Instance:
        ranked = self.compare(refs, metric)
        if not ranked:
            raise ModelNotFound(f"nothing to compare in {refs!r}")
        return ranked[0]

    # -- promoting -----------------------------------------------------------------------------
    def check_promotion(self, ref: str | Instance, alias: str = "champion") -> list[GateFailure]:
        """The promotion gates that would refuse pointing ``alias`` at ``ref`` now.

        Faces call this to warn before they ask for a confirmation; ``promote`` checks again.

        Raises:
            InvalidModelName: ``alias`` is not a promotion alias, or ``ref`` is malformed.
            ModelNotFound: ``ref`` resolves to nothing.
            ConfigError: ``promotion_gates`` names an unknown gate.
            TrackingError: the tracking server failed or cannot be reached.
        """
        _require_promotion_alias(alias)
        target = self.resolve(ref)
        return check_gates(target, self._alias_holder(target.registered_model, alias), alias,
                           self.settings)

    def _alias_holder(self, registered_model: str, alias: str) -> Instance | None:
        holder = self._by_alias(registered_model, alias)
        return self._instances([holder])[0] if holder is not None else None

    def promote(
        self,
        ref: str | Instance,
        alias: str = "champion",
        *,
        reason: str = "",
        by: str | None = None,
        override: bool = False,
        same_data: SameData | None = None,
    ) -> Promotion:
        """Point ``alias`` (``champion`` or ``challenger``) at ``ref`` and record who, when, why.

        The promotion gates (:mod:`workbench.promotion`) run first; ``same_data`` gives the
        metric gate both instances' metric on the same rows (a retrain proposal's). ``override`` promotes
        despite failed gates; it needs a ``reason``, and the record names the gates it
        overrode. The history record is written before the alias moves: a promotion that
        is not in the history did not happen.

        Raises:
            InvalidModelName: ``alias`` is not a promotion alias.
            ModelNotFound: ``ref`` resolves to nothing.
            PromotionRefused: a gate failed and ``override`` is False; nothing changed.
            OverrideNeedsReason: ``override`` without a ``reason``.
            ConfigError: ``promotion_gates`` names an unknown gate.
            TrackingError: the tracking server failed or cannot be reached.
        """
        _require_promotion_alias(alias)
        reason = reason.strip()
        if override and not reason:
            raise OverrideNeedsReason(
                "overriding a promotion gate needs a reason for the audit trail; give one "
                "(e.g. --reason 'metric measured on a newer month')"
            )
        # Resolved fresh even when given an Instance: the gates need its current tags.
        target = self.resolve(f"models:/{ref.registered_model}/{ref.number}"
                              if isinstance(ref, Instance) else ref)
        previous = self._alias_holder(target.registered_model, alias)
        failures = check_gates(target, previous, alias, self.settings, same_data)
        if failures and not override:
            raise PromotionRefused(
                f"{alias} not moved to {target.label}: "
                + "; and ".join(f.message for f in failures),
                tuple(f.gate for f in failures), alias, target.label,
            )
        return self._move(PROMOTE, alias, target, previous, by or _current_user(), reason,
                          tuple(f.gate for f in failures))

    def rollback(self, registered_model: str, alias: str = "champion", *, reason: str,
                 by: str | None = None) -> Promotion:
        """Move ``alias`` back to the instance its current holder replaced, and record it.

        The gates are checked but do not refuse: a rollback is a deliberate human act that
        restores an instance which passed them once, usually because the newer one misbehaves
        in ways the offline metric missed (so the metric gate would refuse by construction).
        Any gate that would have refused is recorded as overridden, so the history shows
        what the rollback bypassed; the reason is mandatory.

        Raises:
            InvalidModelName: ``alias`` is not a promotion alias.
            OverrideNeedsReason: ``reason`` is empty.
            ModelNotFound: the registered model does not exist, nothing holds ``alias``, the
                history has no promotion to undo, or the instance it replaced was deleted.
            TrackingError: the tracking server failed or cannot be reached.
        """
        _require_promotion_alias(alias)
        reason = reason.strip()
        if not reason:
            raise OverrideNeedsReason(
                "a rollback needs a reason for the history; give one "
                "(e.g. --reason 'v3 mispredicts since the March release')"
            )
        model = self._registered_model(registered_model)
        if model is None:
            raise ModelNotFound(self._no_model_message(registered_model))
        holder = self._alias_holder(registered_model, alias)
        if holder is None:
            raise ModelNotFound(f"nothing holds {registered_model}@{alias}: there is nothing to "
                                "roll back")
        source = rollback_source(history_from_tags(dict(model.tags or {})), alias, holder.number)
        if source is None or source.from_version is None:
            raise ModelNotFound(
                f"the history of {registered_model} has no promotion that gave {alias} to "
                f"{holder.label} from another instance: nothing to roll back to; "
                f"`workbench models history {registered_model}` shows it"
            )
        try:
            target = self.resolve(f"models:/{registered_model}/{source.from_version}")
        except ModelNotFound:
            raise ModelNotFound(
                f"{source.from_name or source.from_version}, which {holder.label} replaced as "
                f"{alias}, no longer exists; promote another instance instead"
            ) from None
        bypassed = tuple(f.gate for f in check_gates(target, holder, alias, self.settings))
        return self._move(ROLLBACK, alias, target, holder, by or _current_user(), reason, bypassed)

    def _move(self, action: str, alias: str, target: Instance, previous: Instance | None,
              by: str, reason: str, overridden: tuple[str, ...]) -> Promotion:
        now = dt.datetime.now(dt.timezone.utc)
        at = now.isoformat(timespec="seconds")
        record = HistoryRecord(
            id=HistoryRecord.new_id(now), action=action, alias=alias,
            from_version=previous.number if previous else None,
            from_name=previous.label if previous else None,
            to_version=target.number, to_name=target.label, by=by, at=at,
            reason=reason, overridden=overridden,
        )
        model = target.registered_model
        # The record first: an alias that moved without one would be a promotion nobody can
        # account for; a record whose move then failed is an attempt, and the error says so.
        with self._calling(f"recording the {action} of {alias} in '{model}'"):
            self.client.set_registered_model_tag(model, record.tag_key, record.to_json())
        with self._calling(f"moving {model}@{alias} to {target.label}"):
            self.client.set_registered_model_alias(model, alias, str(target.number))
            self._write_version_tags(record, target, previous)
        current = self.resolve(f"models:/{model}/{target.number}")
        return Promotion(alias, current, previous, by, reason, overridden, record)

    def _write_version_tags(self, record: HistoryRecord, target: Instance,
                            previous: Instance | None) -> None:
        # The last promotion on the version itself, as the MLflow UI shows tags; the history
        # is the record, these are a convenience and are overwritten by the next promotion.
        prefix = f"{AUDIT_PREFIX}.{record.alias}"
        tags = {f"{prefix}.by": record.by, f"{prefix}.at": record.at,
                f"{prefix}.reason": record.reason or "-",
                f"{prefix}.override": ",".join(record.overridden) or "-"}
        if previous is not None and previous.number != target.number:
            tags[f"{prefix}.replaced"] = previous.label
            self.client.set_model_version_tag(target.registered_model, str(previous.number),
                                              f"{prefix}.retired_at", record.at)
        for key, value in tags.items():
            self.client.set_model_version_tag(target.registered_model, str(target.number),
                                              key, value)

    def history(self, registered_model: str, alias: str | None = None) -> list[HistoryRecord]:
        """Every promotion and rollback of ``registered_model`` (of one alias), oldest first.

        Raises:
            ModelNotFound: the registered model does not exist.
            TrackingError: the tracking server failed or cannot be reached.
        """
        model = self._registered_model(registered_model)
        if model is None:
            raise ModelNotFound(self._no_model_message(registered_model))
        return history_from_tags(dict(model.tags or {}), alias)

    # -- links ------------------------------------------------------------------------------
    def ui_url(self, instance: Instance) -> str:
        base = self.settings.tracking_uri.rstrip("/")
        return f"{base}/#/models/{instance.registered_model}/versions/{instance.number}"

    def run_url(self, instance: Instance) -> str | None:
        """The MLflow UI page of the run that trained ``instance`` (None if unknown)."""
        if not (instance.run_id and instance.experiment_id):
            return None
        from workbench.tracking import run_ui_url

        return run_ui_url(self.settings, instance.experiment_id, instance.run_id)


def task_tags(model: Any, settings: Settings) -> dict[str, str]:
    """The tags that say what a version predicts and which way its primary metric points:
    ``workbench.task`` (when it can be told), ``workbench.primary_metric`` and
    ``workbench.greater_is_better``, so a board in a project with another setting still
    orders its versions right (see :mod:`workbench.tasks`)."""
    task = tasks.model_task(model)
    return {
        **({tasks.TASK_TAG: task} if task else {}),
        tasks.PRIMARY_METRIC_TAG: settings.primary_metric,
        tasks.GREATER_IS_BETTER_TAG: "true" if settings.greater_is_better else "false",
    }


def _instance(version: ModelVersion, run: Any | None) -> Instance:
    tags = dict(version.tags or {})
    name = _convention_name(version.name, tags.get(MODEL_NAME_TAG))
    created = (
        dt.datetime.fromtimestamp(version.creation_timestamp / 1000, tz=dt.timezone.utc)
        if version.creation_timestamp else None
    )
    # A deleted run leaves the instance resolvable, without metrics.
    return Instance(
        registered_model=version.name,
        number=int(version.version),
        full_name=str(name) if name else None,
        model_version=name.version if name else None,
        data_date=name.data_date if name else None,
        run_id=version.run_id or None,
        source=version.source or "",
        aliases=tuple(sorted(version.aliases or ())),
        tags=tags,
        metrics=dict(run.data.metrics) if run is not None else {},
        params=dict(run.data.params) if run is not None else {},
        created_at=created,
        experiment_id=run.info.experiment_id if run is not None else None,
    )


def _pages(search: Any) -> Iterator[Any]:
    """Every item of a paged MLflow search: ``search(page_token)`` until no token is left."""
    token: str | None = None
    while True:
        page = search(token)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def _convention_name(registered_model: str, tagged: str | None) -> ModelName | None:
    if not tagged:
        return None
    try:
        name = ModelName.parse(tagged)
    except InvalidModelName:
        return None
    return name if name.instance == registered_model else None


def _require_promotion_alias(alias: str) -> None:
    if alias not in PROMOTION_ALIASES:
        raise InvalidModelName(
            f"alias {alias!r} is not a promotion alias; use one of {', '.join(PROMOTION_ALIASES)}",
            "alias",
        )


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"

