"""Drift checks of registered models: the I/O around :func:`.drift.check_drift`.

``check_model_drift`` resolves the model, loads the reference profile stored with its
version, gets the current data (a file, a frame, or the predictions logged for the model
in a time window), runs the check, writes the HTML report and the JSON summary, logs both
to a monitoring run in the model's experiment (tagged ``workbench.monitored_model`` and
``workbench.monitored_version``, with the logged model as the run's input), and sets the
``drift_status``, ``drift_checked_at`` and ``drift_run_id`` tags on the model version.
A report that cannot be written or logged ends that run FAILED (KILLED on Ctrl-C) with the
reason in its ``workbench.failure`` tag and its note; it never stays RUNNING.

Every reason a check cannot be made raises a :class:`~workbench.errors.MonitoringError`
(exit status 2 in the CLI); a drift verdict is a result, which
:meth:`DriftCheck.raise_for_drift` turns into :class:`~workbench.errors.DriftDetected`
(exit status 1) for the faces that want it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.config import Settings
from workbench.errors import (
    DriftDetected,
    InvalidModelName,
    ModelNotFound,
    MonitoringError,
    NoCurrentData,
    ProfileError,
    ProfileNotFound,
    UnknownMonitoredModel,
    WorkbenchError,
)
from workbench.monitoring.drift import DRIFT, DriftResult, Thresholds, check_drift, validate_frame
from workbench.monitoring.profile import PREDICTION, ReferenceProfile
from workbench.monitoring.report import REPORT_FILE, SUMMARY_FILE, write_report
from workbench.progress import Progress
from workbench.promotion import DRIFT_CHECKED_AT_TAG, DRIFT_STATUS_TAG
from workbench.registry import PROFILE_TAG, Instance, Registry

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

MONITORED_MODEL_TAG = "workbench.monitored_model"
MONITORED_VERSION_TAG = "workbench.monitored_version"
MONITORED_REGISTERED_MODEL_TAG = "workbench.monitored_registered_model"
MONITORING_TAG = "workbench.monitoring"
DRIFT_RUN_TAG = "drift_run_id"
# Why a monitoring run ended FAILED or KILLED; MLflow's UI shows the note as the description.
FAILURE_TAG = "workbench.failure"
NOTE_TAG = "mlflow.note.content"
_TAG_LIMIT = 5000

_RELATIVE = re.compile(r"^(\d+)\s*([dhm])$")
# What read_predictions adds to the inputs (a model's drift reads all its rows, whatever
# their role: its inputs drift the same whether it answered or shadowed).
_STORE_COLUMNS = ("request_id", "created_at", "model_name", "role", "prediction", "latency_ms")


@dataclass(frozen=True)
class DriftCheck:
    """One drift check of a model version, and where its report went.

    Attributes:
        model: the checked instance.
        result: the per-feature checks and the verdict.
        source: what was compared (a file, or the prediction store and window).
        checked_at: when (UTC).
        report_html, summary_json: the local copies of the report and the summary.
        run_id, run_url: the monitoring run the two were logged to (None when not logged).
    """

    model: Instance
    result: DriftResult
    source: str
    checked_at: dt.datetime
    report_html: Path
    summary_json: Path
    run_id: str | None = None
    run_url: str | None = None

    @property
    def verdict(self) -> str:
        return self.result.verdict

    def raise_for_drift(self) -> None:
        """Raise when the verdict is ``drift``; do nothing for ``ok`` and ``warn``.

        Raises:
            DriftDetected: with the drifted features and the monitoring run.
        """
        if self.result.verdict != DRIFT:
            return
        drifted = list(self.result.drifted)
        if self.result.prediction is not None and self.result.prediction.status == DRIFT:
            drifted.append(PREDICTION)
        where = f"; report: {self.run_url}" if self.run_url else f"; report: {self.report_html}"
        raise DriftDetected(
            f"{self.model.label}: drift in {', '.join(drifted) or 'the predictions'}{where}",
            tuple(drifted), self.run_id,
        )


def check_model_drift(
    ref: str | Instance,
    settings: Settings,
    *,
    current: Path | str | pd.DataFrame | None = None,
    since: str | dt.datetime | None = None,
    until: str | dt.datetime | None = None,
    thresholds: Thresholds | None = None,
    registry: Registry | None = None,
    report_dir: Path | None = None,
    log: bool = True,
    progress: Progress | None = None,
    engine: str = "local",
    master: str | None = None,
    conf: Mapping[str, str] | None = None,
    spark: Any = None,
) -> DriftCheck:
    """Check a registered model's current data for drift against its reference profile.

    Args:
        ref: full name, ``instance@alias`` or ``models:/`` URI.
        settings: tracking server, state directory and prediction store.
        current: a CSV/Parquet file or a DataFrame. Its ``prediction`` column, if any, is
            taken as the model's predictions; otherwise the model scores it. When omitted,
            the predictions logged for the model (``settings.prediction_store_url``) in
            the window ``since``..``until`` are the current data.
        since, until: the window's ends (``until`` exclusive): datetimes, ISO 8601 text,
            ``YYYYMMDD``, or ``7d``/``12h``/``30m`` ago. A date alone means its whole day,
            so ``until="2024-04-30"`` includes the 30th. Naive times are UTC.
        thresholds: the defaults when omitted.
        registry: built from ``settings`` when omitted.
        report_dir: where the report and summary are written (default:
            ``<home>/monitoring/<model>/<timestamp>``).
        log: log the report to a monitoring run and tag the model version.
        progress: called with a line per step.
        engine: ``local`` (pandas) or ``spark``: the current data (``current``: a file,
            folder, glob or URI) counted by two Spark aggregation jobs, with the same
            figures (see :mod:`workbench.engines.spark_monitoring`).
        master, conf, spark: the Spark session's master and properties, or a running
            session (see :func:`workbench.engines.spark.start_session`).

    Returns:
        The check; its verdict is a result, not an error (see ``raise_for_drift``).

    Raises:
        UnknownMonitoredModel: ``ref`` resolves to no model.
        ProfileNotFound: the model version has no reference profile.
        NoCurrentData: an empty file, or no predictions in the window.
        SchemaMismatch: the current data lacks the model's columns or holds other kinds
            of values.
        MonitoringError: any other reason the check cannot be made (both a file and a
            window, an unreadable file or store, an unreachable tracking server).
    """
    say = progress or (lambda _line: None)
    if current is not None and (since or until):
        raise MonitoringError("compare either a file (--current) or a time window of logged "
                              "predictions (--since/--until), not both")
    start = parse_time(since) if since else None
    end = parse_time(until, end_of_day=True) if until else None
    if start and end and start >= end:
        raise MonitoringError(f"the window is empty: since {start.isoformat()} is not before "
                              f"until {end.isoformat()}")
    thresholds = thresholds or Thresholds()
    if engine not in ("local", "spark"):
        raise MonitoringError(f"unknown engine {engine!r}; use local or spark")
    spark_options = None
    if engine == "spark":
        if current is None or not isinstance(current, (str, Path)):
            raise MonitoringError("the Spark engine checks a dataset: pass --current with a "
                                  "file, a folder or a glob")
        spark_options = {"master": master, "conf": conf, "spark": spark}
    from mlflow.exceptions import MlflowException

    try:
        return _check(ref, settings, current, start, end, thresholds, registry, report_dir,
                      log, say, spark_options)
    except MonitoringError:
        raise
    except WorkbenchError as exc:  # e.g. the tracking server is down: not a drift (exit 1)
        raise MonitoringError(str(exc)) from exc
    except MlflowException as exc:
        raise MonitoringError(f"the tracking server at {settings.tracking_uri} refused a call "
                              f"({_first_line(exc)})") from exc


def _check(ref: str | Instance, settings: Settings, current: Any, start: dt.datetime | None,
           end: dt.datetime | None, thresholds: Thresholds, registry: Registry | None,
           report_dir: Path | None, log: bool, say: Progress,
           spark_options: dict[str, Any] | None = None) -> DriftCheck:
    from workbench.tracking import require_server

    require_server(settings)
    registry = registry or Registry(settings)
    instance = resolve_model(registry, ref)
    profile = load_profile(instance, registry)
    say(f"reference profile of {instance.label}: {len(profile.features)} features, "
        f"{profile.rows} rows")

    note = None
    if spark_options is not None:
        from workbench.engines.spark_monitoring import drift_on_spark

        result, note = drift_on_spark(profile, instance, current, settings, thresholds,
                                      progress=say, **spark_options)
        source = f"dataset {current} (Spark)"
    else:
        if current is None:
            frame, predictions, source = _from_store(settings, instance, start, end, say)
        else:
            frame, source = _from_file(current)
            validate_frame(profile, frame)
            predictions, note = _predictions_for(frame, profile, instance, settings, say)
        result = check_drift(profile, frame, predictions, thresholds)
    if note:
        result = dataclasses.replace(result, notes=(note,))  # says more than check_drift's
    checked_at = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    say(f"{result.current_rows} current rows checked: {result.summary_line()}")

    context: dict[str, Any] = {
        "model": instance.label, "registered_model": instance.registered_model,
        "mlflow_version": instance.number, "source": source,
        "since": start.isoformat() if start else None, "until": end.isoformat() if end else None,
        "checked_at": checked_at.isoformat(), "profile_created_at": profile.created_at,
    }
    folder = report_dir or (settings.home / "monitoring" / _safe(instance.label)
                            / checked_at.strftime("%Y%m%dT%H%M%SZ"))
    run_id = run_url = None
    client = registry.client
    if log:
        run_id, run_url = _start_run(client, instance, settings, result, checked_at)
        context.update(run_id=run_id, run=run_url)
    try:
        html_path, json_path = _write_report(result, context, Path(folder))
        if run_id:
            _finish_run(client, run_id, instance, result, context, html_path, json_path,
                        checked_at)
    except MonitoringError as exc:
        if run_id:
            _fail_run(client, run_id, str(exc))
            raise MonitoringError(f"{exc}; monitoring run {run_id} marked FAILED") from exc
        raise
    except BaseException:
        # Ctrl-C (or SystemExit) while drawing or logging: every Exception became a
        # MonitoringError above; the run must not stay RUNNING, and this goes on unchanged.
        if run_id:
            _fail_run(client, run_id, "the drift check was interrupted", "KILLED")
        raise
    if run_id:
        client.set_terminated(run_id, "FINISHED")
        say(f"report logged to {run_url}")
    return DriftCheck(instance, result, source, checked_at, html_path, json_path, run_id, run_url)


def _write_report(result: DriftResult, context: dict[str, Any],
                  folder: Path) -> tuple[Path, Path]:
    """``write_report``, its failures as one line.

    Raises:
        MonitoringError: the folder cannot be written, or the page cannot be rendered.
    """
    try:
        return write_report(result, context, folder)
    except OSError as exc:
        raise MonitoringError(f"cannot write the drift report into {folder}: "
                              f"{exc.strerror or exc}") from exc
    except Exception as exc:  # a plot or the template failed: the report's fault, not the data's
        raise MonitoringError(f"cannot render the drift report ({exc.__class__.__name__}: "
                              f"{_first_line(exc)})") from exc


def resolve_model(registry: Registry, ref: str | Instance) -> Instance:
    """The instance ``ref`` names.

    Raises:
        UnknownMonitoredModel: it names no model, or is malformed.
    """
    try:
        return registry.resolve(ref)
    except (ModelNotFound, InvalidModelName) as exc:
        raise UnknownMonitoredModel(str(exc)) from exc


def load_profile(instance: Instance, registry: Registry) -> ReferenceProfile:
    """The reference profile stored with a model version.

    Raises:
        ProfileNotFound: the version has no ``workbench.profile`` tag, or its file is gone.
        ProfileError: the file is not a profile this workbench can read.
    """
    name = instance.tags.get(PROFILE_TAG)
    if not name:
        raise ProfileNotFound(
            f"{instance.label} has no reference profile (no '{PROFILE_TAG}' tag on MLflow version "
            f"{instance.number} of '{instance.registered_model}'); register the model with an "
            "input frame (%mlops_package MODEL --input X_train, or Registry.register(..., "
            "input_example=X_train)) to store one"
        )
    import mlflow
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="workbench-profile-") as tmp:
        try:
            # Through this client and its server: a models:/ URI would go to the global one.
            files = registry.client.get_model_version_download_uri(
                instance.registered_model, str(instance.number))
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{files.rstrip('/')}/{name}", dst_path=tmp,
                tracking_uri=registry.settings.tracking_uri)
            text = Path(local).read_text(encoding="utf-8")
        except (MlflowException, OSError) as exc:
            raise ProfileNotFound(
                f"{instance.label}: the reference profile '{name}' cannot be read from the "
                f"model's files ({exc.__class__.__name__}: {_first_line(exc)})"
            ) from exc
    try:
        return ReferenceProfile.from_json(text)
    except ProfileError as exc:
        raise ProfileError(f"{instance.label}: {exc}") from exc


def parse_time(value: str | dt.datetime, end_of_day: bool = False) -> dt.datetime:
    """A window end as an aware UTC datetime.

    Accepts datetimes, ISO 8601 text (``2024-04-30``, ``2024-04-30T12:00``, with or without
    an offset), ``YYYYMMDD`` and ``<N>d``/``<N>h``/``<N>m`` (that long ago). A date alone is
    its midnight, or the next midnight with ``end_of_day`` (so the day is included).

    Raises:
        MonitoringError: the text is none of these.
    """
    if isinstance(value, dt.datetime):
        moment = value
    else:
        text = str(value).strip()
        relative = _RELATIVE.match(text)
        if relative:
            amount, unit = int(relative.group(1)), relative.group(2)
            delta = {"d": dt.timedelta(days=amount), "h": dt.timedelta(hours=amount),
                     "m": dt.timedelta(minutes=amount)}[unit]
            return dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - delta
        date_only = re.fullmatch(r"\d{8}|\d{4}-\d{2}-\d{2}", text)
        try:
            moment = (dt.datetime.strptime(text.replace("-", ""), "%Y%m%d") if date_only
                      else dt.datetime.fromisoformat(text))
        except ValueError:
            raise MonitoringError(
                f"cannot read {text!r} as a time; use 2024-04-30, 2024-04-30T12:00, 20240430 "
                "or 7d (seven days ago)") from None
        if date_only and end_of_day:
            moment += dt.timedelta(days=1)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


# -- current data ----------------------------------------------------------------------------
def _from_file(current: Path | str | pd.DataFrame) -> tuple[pd.DataFrame, str]:
    import pandas as pd

    if isinstance(current, pd.DataFrame):
        return current, "data frame"
    from workbench.predict import read_table

    path = Path(current)
    try:
        frame = read_table(path)
    except WorkbenchError as exc:
        raise MonitoringError(str(exc)) from exc
    except Exception as exc:
        raise MonitoringError(
            f"cannot read {path}: {exc.__class__.__name__}: {_first_line(exc)}") from exc
    if frame.empty:
        raise NoCurrentData(f"{path} has no rows")
    return frame, f"file {path}"


def _from_store(settings: Settings, instance: Instance, start: dt.datetime | None,
                end: dt.datetime | None, say: Progress) -> tuple[pd.DataFrame, Any, str]:
    import pandas as pd
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from workbench.store.reader import read_predictions

    url = settings.prediction_store_url
    # The serving side logs predictions under this name (full name, else the source URI).
    name = instance.full_name or instance.source
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except Exception:
        shown = "the prediction store"
    window = (f"{start.isoformat() if start else 'the beginning'} to "
              f"{end.isoformat() if end else 'now'}")
    say(f"reading predictions of {name} from {shown}, {window}")
    try:
        logged = read_predictions(url, model_name=name, since=start, until=end)
    except SQLAlchemyError as exc:
        raise MonitoringError(f"cannot read the prediction store {shown}: "
                              f"{exc.__class__.__name__}: {_first_line(exc)}") from exc
    if logged.empty:
        raise NoCurrentData(
            f"no predictions of {name} logged from {window} in {shown}; widen the window "
            "(--since/--until), check WORKBENCH_PREDICTION_STORE, or pass a file with --current"
        )
    # read_predictions prefixes input columns that clash with its own ("input_prediction").
    renames = {f"input_{column}": column for column in _STORE_COLUMNS
               if f"input_{column}" in logged}
    frame = logged.drop(columns=[c for c in _STORE_COLUMNS if c in logged]).rename(columns=renames)
    return frame, pd.Series(logged["prediction"].to_numpy()), \
        f"prediction store {shown}, {window}"


def _predictions_for(frame: pd.DataFrame, profile: ReferenceProfile, instance: Instance,
                     settings: Settings, say: Progress) -> tuple[Any, str | None]:
    """The file's ``prediction`` column, else the model's predictions on the file.

    Returns:
        The predictions (None when there are none to check) and, when the model could not
        score the file, why: the features are still checked.
    """
    if PREDICTION in frame.columns and PREDICTION not in profile.names:
        return frame[PREDICTION], None
    if profile.prediction is None:
        return None, None
    from workbench.predict import LoadedModel

    say(f"scoring {len(frame)} rows with {instance.label} (the file has no prediction column)")
    try:
        model = LoadedModel(instance, settings)
        columns = model.input_columns or profile.names
        return model.pyfunc.predict(frame[columns]), None
    except Exception as exc:
        detail = _first_line(exc)
        if "enforce schema" in detail:  # MLflow's message goes on with the whole frame
            detail = "the column types differ from the model's signature"
        note = (f"{instance.label} could not score the current data ({exc.__class__.__name__}: "
                f"{detail}), so the predictions were not checked; add a prediction column "
                "to check them")
        return None, note


# -- logging ---------------------------------------------------------------------------------
def _start_run(client: MlflowClient, instance: Instance, settings: Settings, result: DriftResult,
               checked_at: dt.datetime) -> tuple[str, str]:
    from workbench.tracking import run_ui_url

    experiment_id = monitoring_experiment(client, instance, settings)
    name = instance.full_name or f"{instance.registered_model}-v{instance.number}"
    run = client.create_run(
        experiment_id,
        run_name=f"drift-{name}-{checked_at.strftime('%Y%m%dT%H%M%SZ')}",
        tags={**monitoring_tags(instance, "drift"), "workbench.drift_status": result.verdict},
    )
    return run.info.run_id, run_ui_url(settings, experiment_id, run.info.run_id)


def monitoring_experiment(client: MlflowClient, instance: Instance, settings: Settings) -> str:
    """The experiment a model version's monitoring runs go to: its training run's, else the
    settings' experiment (created when missing).

    Raises:
        MlflowException: the tracking server refuses the calls.
    """
    from workbench.tracking import ensure_experiment

    if instance.run_id:
        try:
            return str(client.get_run(instance.run_id).info.experiment_id)
        except Exception:
            pass  # the training run is gone: the default experiment will do
    return str(ensure_experiment(client, settings.experiment))


def monitoring_tags(instance: Instance, kind: str) -> dict[str, str]:
    """The tags that mark a run as ``kind`` monitoring (drift, performance) of ``instance``."""
    return {
        MONITORING_TAG: kind,
        MONITORED_MODEL_TAG: instance.label,
        MONITORED_VERSION_TAG: str(instance.number),
        MONITORED_REGISTERED_MODEL_TAG: instance.registered_model,
    }


def _finish_run(client: MlflowClient, run_id: str, instance: Instance, result: DriftResult,
                context: dict[str, Any], html_path: Path, json_path: Path,
                checked_at: dt.datetime) -> None:
    from mlflow.entities import Metric, Param

    now = int(checked_at.timestamp() * 1000)
    metrics = [Metric("drift.features_drifted", len(result.drifted), now, 0),
               Metric("drift.features_warned", len(result.warned), now, 0),
               Metric("drift.current_rows", result.current_rows, now, 0)]
    for check in result.checks:
        key = _metric_key(check.name)
        for stat in ("psi", "ks_statistic", "chi2_statistic", "js_distance"):
            value = getattr(check, stat)
            if value is not None and value == value:
                metrics.append(Metric(f"{stat}.{key}", float(value), now, 0))
        metrics.append(Metric(f"missing_change.{key}", float(check.missing_change), now, 0))
    params = [Param("source", str(context["source"])[:500]),
              *(Param(f"threshold.{k}", str(v)) for k, v in result.thresholds.as_dict().items())]
    if context.get("since"):
        params.append(Param("since", context["since"]))
    if context.get("until"):
        params.append(Param("until", context["until"]))
    try:
        for chunk in range(0, len(metrics), 900):  # MLflow takes at most 1000 metrics a call
            client.log_batch(run_id, metrics=metrics[chunk:chunk + 900],
                             params=params if chunk == 0 else [])
        client.log_artifact(run_id, str(html_path))
        client.log_artifact(run_id, str(json_path))
        _link_model(client, run_id, instance)
        version = str(instance.number)
        client.set_model_version_tag(instance.registered_model, version, DRIFT_STATUS_TAG,
                                     result.verdict)
        client.set_model_version_tag(instance.registered_model, version, DRIFT_CHECKED_AT_TAG,
                                     checked_at.isoformat())
        client.set_model_version_tag(instance.registered_model, version, DRIFT_RUN_TAG, run_id)
    except Exception as exc:
        raise MonitoringError(f"cannot log the drift report to run {run_id}: "
                              f"{exc.__class__.__name__}: {_first_line(exc)}") from exc


def _fail_run(client: MlflowClient, run_id: str, reason: str, status: str = "FAILED") -> None:
    """End the monitoring run as ``status`` with ``reason`` as a tag and as its note.

    Best effort: when the server cannot take it (it may be why the check failed), the
    caller's error is what the user needs to see, so nothing is raised here.
    """
    from mlflow.entities import RunTag

    with contextlib.suppress(Exception):
        client.log_batch(run_id, tags=[
            RunTag(FAILURE_TAG, reason[:_TAG_LIMIT]),
            RunTag(NOTE_TAG, f"Drift check failed: {reason}"[:_TAG_LIMIT]),
        ])
    with contextlib.suppress(Exception):
        client.set_terminated(run_id, status)


def _link_model(client: MlflowClient, run_id: str, instance: Instance) -> None:
    """Show the checked model among the monitoring run's inputs in the MLflow UI."""
    if not instance.source.startswith("models:/m-"):
        return  # registered from a run's artifacts: the tags are the link
    from mlflow.entities import LoggedModelInput

    model_id = instance.source.removeprefix("models:/")
    client.log_inputs(run_id, models=[LoggedModelInput(model_id=model_id)])


def _metric_key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)[:200] or "_"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


# -- reference profiles from data ------------------------------------------------------------
@dataclass(frozen=True)
class StoredProfile:
    """A reference profile built from data and stored with a model version.

    Attributes:
        model: the instance whose version got the profile.
        profile: the profile.
        source: what it was built from.
        replaced: the version had a profile before, which this one replaced.
    """

    model: Instance
    profile: ReferenceProfile
    source: str
    replaced: bool


def profile_model(
    ref: str | Instance, settings: Settings, data: Path | str, *, engine: str = "local",
    master: str | None = None, conf: Mapping[str, str] | None = None, spark: Any = None,
    registry: Registry | None = None, progress: Progress | None = None,
) -> StoredProfile:
    """Build the reference profile of ``data`` (training data: a file, folder or glob) and
    the model's predictions on it, and store it with the model version, replacing any.

    For models registered without an input frame (no profile), and for training data too
    large for pandas (``engine="spark"``).

    Raises:
        UnknownMonitoredModel: ``ref`` resolves to no model.
        MonitoringError: the data cannot be read or scored, or the profile not stored.
    """
    say = progress or (lambda _line: None)
    if engine not in ("local", "spark"):
        raise MonitoringError(f"unknown engine {engine!r}; use local or spark")
    from workbench.tracking import require_server

    require_server(settings)
    registry = registry or Registry(settings)
    instance = resolve_model(registry, ref)
    try:
        if engine == "spark":
            from workbench.engines.spark_monitoring import profile_dataset_on_spark

            profile = profile_dataset_on_spark(instance, data, settings, master=master,
                                               conf=conf, spark=spark, progress=say)
        else:
            profile = _profile_locally(instance, settings, data, say)
    except MonitoringError:
        raise
    except WorkbenchError as exc:
        raise MonitoringError(str(exc)) from exc
    replaced = bool(instance.tags.get(PROFILE_TAG))
    _store_profile(registry, instance, profile)
    say(f"reference profile of {instance.label} stored: {len(profile.features)} features, "
        f"{profile.rows} rows")
    return StoredProfile(instance, profile, str(data), replaced)


def _profile_locally(instance: Instance, settings: Settings, data: Path | str,
                     say: Progress) -> ReferenceProfile:
    import pandas as pd

    from workbench.engines.local import iter_frames, resolve_dataset
    from workbench.monitoring.profile import build_profile, kind_of_predictions
    from workbench.predict import LoadedModel
    from workbench.tasks import TASK_TAG

    dataset = resolve_dataset(data)
    say(f"reading {len(dataset.files)} file(s) of {data}")
    frame = pd.concat([f for _, f in iter_frames(dataset)], ignore_index=True)
    if frame.empty:
        raise NoCurrentData(f"{data} has no rows to profile")
    model = LoadedModel(instance, settings)
    columns = model.input_columns or list(frame.columns)
    predictions, _ = model.outputs(frame)
    return build_profile(frame[columns], predictions,
                         prediction_kind=kind_of_predictions(instance.tags.get(TASK_TAG)))


def _store_profile(registry: Registry, instance: Instance, profile: ReferenceProfile) -> None:
    """Upload the profile among the model version's files and point its tag at it.

    Raises:
        MonitoringError: the tracking server refused the file or the tag.
    """
    import mlflow
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    from workbench.monitoring.profile import PROFILE_FILE

    client = registry.client
    try:
        files = client.get_model_version_download_uri(instance.registered_model,
                                                      str(instance.number))
        with tempfile.TemporaryDirectory(prefix="workbench-profile-") as tmp:
            path = Path(tmp) / PROFILE_FILE
            path.write_text(profile.to_json(), encoding="utf-8")
            mlflow.set_tracking_uri(registry.settings.tracking_uri)
            get_artifact_repository(files).log_artifact(str(path))
        client.set_model_version_tag(instance.registered_model, str(instance.number),
                                     PROFILE_TAG, PROFILE_FILE)
    except Exception as exc:
        raise MonitoringError(f"cannot store the reference profile of {instance.label} "
                              f"({exc.__class__.__name__}: {_first_line(exc)})") from exc


__all__ = [
    "FAILURE_TAG",
    "REPORT_FILE",
    "SUMMARY_FILE",
    "DriftCheck",
    "StoredProfile",
    "check_model_drift",
    "load_profile",
    "monitoring_experiment",
    "monitoring_tags",
    "parse_time",
    "profile_model",
    "resolve_model",
]
