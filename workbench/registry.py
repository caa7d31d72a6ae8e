"""The model registry under the naming convention: register, resolve, list, compare, promote.

In MLflow terms: the registered model is the *instance* (``churn``); each training creates
one MLflow model version, tagged ``model_name`` / ``model_version`` / ``data_date`` and given
an alias equal to its full name (``churn_v2_20240131``), which is how full names resolve
and why they are immutable. ``champion`` and ``challenger`` are ordinary aliases moved by
``promote``, which leaves an audit trail in model version tags.

This is the engine under the CLI, the magics and the widgets.
"""
from __future__ import annotations

import datetime as dt
import getpass
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench import lineage
from workbench._version import __version__
from workbench.config import Settings
from workbench.errors import (
    InvalidModelName,
    ModelAlreadyRegistered,
    ModelNotFound,
    OverrideNeedsReason,
    PromotionRefused,
    UnsupportedModel,
    WorkbenchError,
)
from workbench.naming import PROMOTION_ALIASES, ModelName, ModelRef, parse_ref
from workbench.promotion import GateFailure, check_gates

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

MODEL_NAME_TAG = "model_name"
MODEL_VERSION_TAG = "model_version"
DATA_DATE_TAG = "data_date"
AUDIT_PREFIX = "workbench.promotion"
PROFILE_TAG = "workbench.profile"


@dataclass(frozen=True, repr=False)
class Instance:
    """One model instance: an MLflow model version seen through the naming convention.

    Metadata a model registered outside the convention lacks is ``None``.
    """

    registered_model: str
    number: int
    full_name: str | None
    model_version: str | None
    data_date: str | None
    run_id: str | None
    source: str
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    created_at: dt.datetime | None = None
    experiment_id: str | None = None

    def __repr__(self) -> str:
        aliases = ", ".join(self.promotion_aliases)
        return f"Instance({self.label}, {self.uri}{', ' + aliases if aliases else ''})"

    @property
    def uri(self) -> str:
        """A URI any MLflow loader accepts (``models:/churn/3``)."""
        return f"models:/{self.registered_model}/{self.number}"

    @property
    def label(self) -> str:
        return self.full_name or self.uri

    @property
    def promotion_aliases(self) -> tuple[str, ...]:
        return tuple(a for a in self.aliases if a in PROMOTION_ALIASES)

    def as_dict(self) -> dict[str, Any]:
        return {
            "full_name": self.full_name,
            "registered_model": self.registered_model,
            "mlflow_version": self.number,
            "model_version": self.model_version,
            "data_date": self.data_date,
            "run_id": self.run_id,
            "aliases": list(self.aliases),
            "metrics": self.metrics,
            "params": self.params,
            "lineage": {k: v for k, v in self.tags.items() if k.startswith(lineage.PREFIX)},
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "uri": self.uri,
        }


@dataclass(frozen=True)
class Promotion:
    """What ``promote`` changed: ``alias`` moved from ``previous`` (if any) to ``current``.

    ``overridden`` names the gates that refused it and were overridden (usually none).
    """

    alias: str
    current: Instance
    previous: Instance | None
    by: str
    reason: str
    overridden: tuple[str, ...] = ()


class Registry:
    """Register, resolve and promote model instances.

    Args:
        settings: tracking URI, primary metric and its direction.
        client: an MlflowClient (built from the settings when omitted); tests inject one.
    """

    def __init__(self, settings: Settings, client: MlflowClient | None = None) -> None:
        from workbench.tracking import make_client

        self.settings = settings
        self.client = client if client is not None else make_client(settings)

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
        So is the reference profile drift checks compare with (``reference_profile.json``
        among the model's files, named by the model version tag ``workbench.profile``); a
        frame that cannot be profiled only costs the profile, with a warning.

        Raises:
            ModelAlreadyRegistered: ``name`` exists already (full names are immutable).
            UnsupportedModel: ``model`` is neither a scikit-learn estimator nor a
                ``mlflow.pyfunc.PythonModel``.
        """
        existing = self._by_alias(name.instance, str(name))
        if existing is not None:
            raise ModelAlreadyRegistered(
                f"{name} is registered already (MLflow version {existing.version} of "
                f"'{name.instance}'); a full name is immutable: retrain with a new data date "
                f"or register a new version (e.g. {name.instance}_v{name.version_number + 1}_"
                f"{name.data_date})"
            )
        run = self.client.get_run(run_id)
        tags = {
            MODEL_NAME_TAG: str(name),
            MODEL_VERSION_TAG: name.version,
            DATA_DATE_TAG: name.data_date,
            lineage.WORKBENCH_VERSION: __version__,
        }
        tags.update({k: v for k, v in run.data.tags.items() if k in lineage.MODEL_VERSION_LINEAGE_KEYS})

        with tempfile.TemporaryDirectory(prefix="workbench-model-") as tmp:
            local = Path(tmp) / "model"
            outputs = _save_model(model, local, input_example)
            profiled = input_example is not None and _save_profile(local, input_example, outputs)
            logged = self.client.create_logged_model(
                run.info.experiment_id, name=str(name), source_run_id=run_id, tags=tags
            )
            try:
                self.client.log_model_artifacts(logged.model_id, str(local))
            except BaseException:
                self.client.finalize_logged_model(logged.model_id, "FAILED")
                raise
            self.client.finalize_logged_model(logged.model_id, "READY")
        self._log_model_output(run_id, logged.model_id)

        self._ensure_registered_model(name.instance)
        version_tags = {**tags, PROFILE_TAG: _profile_file()} if profiled else tags
        version = self.client.create_model_version(
            name.instance, source=f"models:/{logged.model_id}", run_id=run_id, tags=version_tags,
            description=description, model_id=logged.model_id, await_creation_for=0,
        )
        self.client.set_registered_model_alias(name.instance, str(name), version.version)
        return self._instance(self.client.get_model_version(name.instance, version.version))

    def _log_model_output(self, run_id: str, model_id: str) -> None:
        from mlflow.entities import LoggedModelOutput

        # Shows the model under the run's outputs in the MLflow UI.
        self.client.log_outputs(run_id, [LoggedModelOutput(model_id=model_id, step=0)])

    def _ensure_registered_model(self, instance: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(instance)
        except MlflowException:
            self.client.create_registered_model(
                instance,
                tags={"workbench.convention": "{instance}_{version}_{data_date}"},
                description=f"Model instances of '{instance}', named {instance}_<version>_<data_date>.",
            )

    # -- resolving ---------------------------------------------------------------------------
    def resolve(self, ref: str | ModelRef | ModelName | Instance) -> Instance:
        """The instance a full name, ``instance@alias`` or ``models:/`` URI points at.

        Raises:
            InvalidModelName: the reference is malformed.
            ModelNotFound: it is well formed but points at nothing.
        """
        if isinstance(ref, Instance):
            return ref
        parsed = parse_ref(str(ref)) if not isinstance(ref, ModelRef) else ref
        from mlflow.exceptions import MlflowException

        try:
            if parsed.number is not None:
                version = self.client.get_model_version(parsed.registered_model, str(parsed.number))
            else:
                version = self._by_alias(parsed.registered_model, parsed.alias or "")
        except MlflowException:
            version = None
        if version is None:
            raise ModelNotFound(self._not_found_message(parsed))
        return self._instance(version)

    def _not_found_message(self, ref: ModelRef) -> str:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(ref.registered_model)
        except MlflowException:
            return (
                f"no registered model '{ref.registered_model}' at {self.settings.tracking_uri}; "
                "`workbench models list` shows what is registered"
            )
        what = f"version {ref.number}" if ref.number is not None else f"alias '{ref.alias}'"
        return (
            f"'{ref.registered_model}' has no {what}; "
            f"`workbench models list {ref.registered_model}` shows its instances"
        )

    def _by_alias(self, registered_model: str, alias: str) -> ModelVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(registered_model, alias)
        except MlflowException:
            return None

    def _instance(self, version: ModelVersion, with_run: bool = True) -> Instance:
        tags = dict(version.tags or {})
        name = _convention_name(version.name, tags.get(MODEL_NAME_TAG))
        metrics: dict[str, float] = {}
        params: dict[str, str] = {}
        experiment_id = None
        if with_run and version.run_id:
            from mlflow.exceptions import MlflowException

            try:
                run = self.client.get_run(version.run_id)
                metrics, params = dict(run.data.metrics), dict(run.data.params)
                experiment_id = run.info.experiment_id
            except MlflowException:
                pass  # a deleted run: the instance still resolves, without metrics
        created = (
            dt.datetime.fromtimestamp(version.creation_timestamp / 1000, tz=dt.timezone.utc)
            if version.creation_timestamp else None
        )
        return Instance(
            registered_model=version.name,
            number=int(version.version),
            full_name=str(name) if name else None,
            model_version=name.version if name else None,
            data_date=name.data_date if name else None,
            run_id=version.run_id or None,
            source=version.source,
            aliases=tuple(sorted(version.aliases or ())),
            tags=tags,
            metrics=metrics,
            params=params,
            created_at=created,
            experiment_id=experiment_id,
        )

    # -- listing and comparing -----------------------------------------------------------------
    def registered_models(self) -> list[str]:
        return sorted(m.name for m in self.client.search_registered_models())

    def list_instances(self, registered_model: str | None = None) -> list[Instance]:
        """Every instance of one registered model (or of all), newest first.

        Raises:
            ModelNotFound: ``registered_model`` does not exist.
        """
        names = [registered_model] if registered_model else self.registered_models()
        instances: list[Instance] = []
        for name in names:
            if registered_model:
                self._require_registered_model(name)
            versions = self.client.search_model_versions(f"name = '{_quote(name)}'")
            # search_model_versions leaves aliases out; the registered model has them.
            aliases = self._aliases_by_version(name)
            for version in versions:
                version.aliases = aliases.get(str(version.version), [])
                instances.append(self._instance(version))
        return sorted(instances, key=lambda i: (i.registered_model, -i.number))

    def _aliases_by_version(self, name: str) -> dict[str, list[str]]:
        model = self.client.get_registered_model(name)
        out: dict[str, list[str]] = {}
        for alias, number in (model.aliases or {}).items():
            out.setdefault(str(number), []).append(alias)
        return out

    def _require_registered_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            raise ModelNotFound(
                f"no registered model '{name}' at {self.settings.tracking_uri}; "
                "`workbench models list` shows what is registered"
            ) from None

    def compare(
        self, refs: Iterable[str] | str, metric: str | None = None
    ) -> list[Instance]:
        """Instances sorted best first by ``metric`` (the primary metric by default).

        ``refs`` is a registered model name (all its instances) or a list of references.
        Instances without the metric sort last.
        """
        metric = metric or self.settings.primary_metric
        if isinstance(refs, str):
            instances = self.list_instances(refs)
        else:
            instances = [self.resolve(r) for r in refs]
        sign = -1.0 if self.settings.greater_is_better else 1.0
        return sorted(
            instances,
            key=lambda i: (metric not in i.metrics, sign * i.metrics.get(metric, 0.0), -i.number),
        )

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
        """
        _require_promotion_alias(alias)
        target = self.resolve(ref)
        return check_gates(target, self._alias_holder(target.registered_model, alias), alias,
                           self.settings)

    def _alias_holder(self, registered_model: str, alias: str) -> Instance | None:
        holder = self._by_alias(registered_model, alias)
        return self._instance(holder) if holder is not None else None

    def promote(
        self,
        ref: str | Instance,
        alias: str = "champion",
        *,
        reason: str = "",
        by: str | None = None,
        override: bool = False,
    ) -> Promotion:
        """Point ``alias`` (``champion`` or ``challenger``) at ``ref`` and record who, when, why.

        The promotion gates (:mod:`workbench.promotion`) run first. ``override`` promotes
        despite failed gates; it needs a ``reason``, and the audit trail names the gates
        it overrode (tag ``workbench.promotion.<alias>.override``).

        Raises:
            InvalidModelName: ``alias`` is not a promotion alias.
            ModelNotFound: ``ref`` resolves to nothing.
            PromotionRefused: a gate failed and ``override`` is False; nothing changed.
            OverrideNeedsReason: ``override`` without a ``reason``.
            ConfigError: ``promotion_gates`` names an unknown gate.
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
        previous_instance = self._alias_holder(target.registered_model, alias)
        failures = check_gates(target, previous_instance, alias, self.settings)
        if failures and not override:
            raise PromotionRefused(
                f"{alias} not moved to {target.label}: "
                + "; and ".join(f.message for f in failures),
                tuple(f.gate for f in failures), alias, target.label,
            )
        by = by or _current_user()
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.client.set_registered_model_alias(target.registered_model, alias, str(target.number))
        audit = {
            f"{AUDIT_PREFIX}.{alias}.by": by,
            f"{AUDIT_PREFIX}.{alias}.at": now,
            f"{AUDIT_PREFIX}.{alias}.reason": reason or "-",
            # Always written, so a later plain promotion does not inherit an old override.
            f"{AUDIT_PREFIX}.{alias}.override": ",".join(f.gate for f in failures) or "-",
        }
        if previous_instance is not None and previous_instance.number != target.number:
            audit[f"{AUDIT_PREFIX}.{alias}.replaced"] = previous_instance.label
            self.client.set_model_version_tag(
                target.registered_model, str(previous_instance.number),
                f"{AUDIT_PREFIX}.{alias}.retired_at", now,
            )
        for key, value in audit.items():
            self.client.set_model_version_tag(target.registered_model, str(target.number),
                                              key, value)
        return Promotion(alias, self.resolve(f"models:/{target.registered_model}/{target.number}"),
                         previous_instance, by, reason, tuple(f.gate for f in failures))

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


# -- saving models ---------------------------------------------------------------------------
def _save_model(model: Any, path: Path, input_example: pd.DataFrame | None) -> Any:
    """Save ``model`` in MLflow format with a signature and pinned requirements.

    Returns:
        The model's predictions on ``input_example`` (None without one).
    """
    import mlflow
    from mlflow.models import infer_signature

    signature = outputs = None
    if input_example is not None:
        try:
            with warnings.catch_warnings():
                # MLflow's hint about integer columns and missing values: the serving side
                # reports a null in an integer column clearly, so the hint is noise here.
                warnings.filterwarnings("ignore", message=".*[Ii]nteger column", category=UserWarning)
                import mlflow.pyfunc

                outputs = (model.predict(None, input_example)
                           if isinstance(model, mlflow.pyfunc.PythonModel) else model.predict(input_example))
                signature = infer_signature(input_example, outputs)
        except Exception as exc:
            raise WorkbenchError(
                f"cannot infer a signature: the model raised {exc.__class__.__name__} on the "
                f"input frame ({exc}); pass the frame the model was trained on"
            ) from exc
    example = input_example.head(3) if input_example is not None else None
    if _is_sklearn(model):
        mlflow.sklearn.save_model(
            model, str(path), signature=signature, input_example=example,
            pip_requirements=_pinned(["scikit-learn", "pandas", "numpy", "scipy", "cloudpickle"]),
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
        )
    elif isinstance(model, mlflow.pyfunc.PythonModel):
        mlflow.pyfunc.save_model(
            str(path), python_model=model, signature=signature, input_example=example,
            pip_requirements=_pinned(["pandas", "numpy", "cloudpickle"]),
        )
    else:
        raise UnsupportedModel(
            f"cannot register a {type(model).__module__}.{type(model).__name__}: pass a "
            "scikit-learn estimator or pipeline, or an mlflow.pyfunc.PythonModel"
        )
    return outputs


def _save_profile(path: Path, frame: pd.DataFrame, outputs: Any) -> bool:
    """Write the reference profile of ``frame`` (and ``outputs``) into the model folder.

    Returns:
        Whether it was written; a frame that cannot be profiled gives a warning instead.
    """
    from workbench.monitoring.profile import build_profile

    try:
        profile = build_profile(frame, outputs)
    except Exception as exc:
        warnings.warn(f"no reference profile stored, drift checks will refuse this model: "
                      f"{exc.__class__.__name__}: {exc}", UserWarning, stacklevel=3)
        return False
    (path / _profile_file()).write_text(profile.to_json(), encoding="utf-8")
    return True


def _profile_file() -> str:
    # Imported here: the profile module needs numpy, which `import workbench.registry` avoids.
    from workbench.monitoring.profile import PROFILE_FILE

    return PROFILE_FILE


def _is_sklearn(model: Any) -> bool:
    try:
        from sklearn.base import BaseEstimator
    except ImportError:
        return False
    return isinstance(model, BaseEstimator)


def _pinned(packages: list[str]) -> list[str]:
    # Pinned from this environment instead of MLflow's inference, which re-imports the model
    # in a subprocess (seconds per registration) to guess the same list.
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ["mlflow-skinny", *packages]:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            if package == "mlflow-skinny":
                pins.append("mlflow")
    return pins
