"""The registry under the naming convention, against a real mlflow server."""
from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from workbench import lineage, tracking
from workbench.errors import (
    InvalidModelName,
    ModelAlreadyRegistered,
    ModelNotFound,
    OverrideNeedsReason,
    PromotionRefused,
    UnsupportedModel,
)
from workbench.naming import ModelName
from workbench.registry import AUDIT_PREFIX

pytestmark = pytest.mark.integration


def _frame(seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    return X, (X.a + 0.3 * X.b > 0).astype(int)


def _register(registry, name: ModelName, metric: float | None = None, seed: int = 0):
    X, y = _frame(seed)
    run_id = tracking.start_run(registry.client, name.instance, str(name),
                                {lineage.NOTEBOOK_PATH: "/nb/train.ipynb", lineage.DATA_ROWS: "200"})
    if metric is not None:
        registry.client.log_metric(run_id, "roc_auc", metric)
    instance = registry.register(LogisticRegression().fit(X, y), name, run_id=run_id, input_example=X)
    registry.client.set_terminated(run_id)
    return instance, run_id, X


def test_register_tags_alias_lineage_and_signature(registry, unique_instance, settings):
    name = ModelName(unique_instance, "v1", "20240131")
    instance, run_id, X = _register(registry, name, metric=0.7)

    assert instance.full_name == str(name)
    assert (instance.registered_model, instance.model_version, instance.data_date) == (unique_instance, "v1", "20240131")
    assert instance.run_id == run_id
    assert str(name) in instance.aliases
    version = registry.client.get_model_version(unique_instance, str(instance.number))
    assert version.tags["model_name"] == str(name)
    assert version.tags["model_version"] == "v1" and version.tags["data_date"] == "20240131"
    assert version.tags[lineage.NOTEBOOK_PATH] == "/nb/train.ipynb"  # copied from the run
    assert version.run_id == run_id  # the model version links back to its run
    assert instance.metrics["roc_auc"] == pytest.approx(0.7)

    mlflow.set_tracking_uri(settings.tracking_uri)
    loaded = mlflow.pyfunc.load_model(f"models:/{unique_instance}@{name}")
    assert loaded.metadata.get_input_schema().input_names() == ["a", "b"]
    assert list(loaded.predict(X.head(5))) == list(LogisticRegression().fit(*_frame(0)).predict(X.head(5)))


def test_a_full_name_is_immutable(registry, unique_instance):
    name = ModelName(unique_instance, "v1", "20240131")
    _register(registry, name)
    with pytest.raises(ModelAlreadyRegistered, match="immutable") as raised:
        _register(registry, name)
    assert "\n" not in str(raised.value)
    assert len(registry.list_instances(unique_instance)) == 1


def test_resolve_accepts_full_names_aliases_and_uris(registry, unique_instance):
    first, _, _ = _register(registry, ModelName(unique_instance, "v1", "20240131"))
    second, _, _ = _register(registry, ModelName(unique_instance, "v1", "20240229"), seed=1)
    registry.promote(str(second.full_name), "champion", reason="newer")

    assert registry.resolve(f"{unique_instance}_v1_20240131").number == first.number
    assert registry.resolve(f"{unique_instance}@champion").number == second.number
    assert registry.resolve(f"models:/{unique_instance}/{first.number}").full_name == first.full_name
    assert registry.resolve(f"models:/{unique_instance}@champion").full_name == second.full_name

    with pytest.raises(ModelNotFound, match="no alias 'challenger'"):
        registry.resolve(f"{unique_instance}@challenger")
    with pytest.raises(ModelNotFound, match="no registered model"):
        registry.resolve("nosuchmodel_v1_20240131")
    with pytest.raises(InvalidModelName, match="data_date"):
        registry.resolve(f"{unique_instance}_v1_20240230")


def test_models_registered_outside_the_convention_resolve_with_null_metadata(registry, settings):
    X, y = _frame()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    mlflow.set_experiment("plain-mlflow")
    with mlflow.start_run():
        mlflow.sklearn.log_model(LogisticRegression().fit(X, y), name="model",
                                 registered_model_name="Plain_Model")
    instance = registry.resolve("models:/Plain_Model/1")
    assert instance.full_name is None and instance.model_version is None and instance.data_date is None
    assert instance.label == "models:/Plain_Model/1"


def test_promote_moves_the_alias_and_keeps_an_audit_trail(registry, unique_instance):
    a, _, _ = _register(registry, ModelName(unique_instance, "v1", "20240131"), metric=0.6)
    b, _, _ = _register(registry, ModelName(unique_instance, "v2", "20240131"), metric=0.8, seed=1)

    registry.promote(a, "champion", reason="first", by="alice")
    promotion = registry.promote(b, "champion", reason="better roc_auc", by="bob")

    assert promotion.previous is not None and promotion.previous.number == a.number
    assert "champion" in promotion.current.aliases
    assert "champion" not in registry.resolve(str(a.full_name)).aliases
    tags = registry.client.get_model_version(unique_instance, str(b.number)).tags
    assert tags[f"{AUDIT_PREFIX}.champion.by"] == "bob"
    assert tags[f"{AUDIT_PREFIX}.champion.reason"] == "better roc_auc"
    assert tags[f"{AUDIT_PREFIX}.champion.replaced"] == a.full_name
    assert f"{AUDIT_PREFIX}.champion.retired_at" in registry.client.get_model_version(
        unique_instance, str(a.number)).tags

    with pytest.raises(InvalidModelName, match="promotion alias"):
        registry.promote(a, "production")


def test_promotion_gates_refuse_until_overridden_with_a_reason(registry, unique_instance):
    good, _, _ = _register(registry, ModelName(unique_instance, "v1", "20240131"), metric=0.8)
    worse, _, _ = _register(registry, ModelName(unique_instance, "v2", "20240131"), metric=0.7, seed=1)
    registry.promote(good, "champion", by="alice")

    with pytest.raises(PromotionRefused) as refused:
        registry.promote(worse, "champion", reason="newer", by="bob")
    assert refused.value.gates == ("metric",) and refused.value.candidate == worse.full_name
    assert "\n" not in str(refused.value) and "override" in str(refused.value)
    assert [f.gate for f in registry.check_promotion(worse, "champion")] == ["metric"]
    assert "champion" in registry.resolve(str(good.full_name)).aliases  # nothing moved

    # The drift tag monitoring writes gates both aliases.
    registry.client.set_model_version_tag(unique_instance, str(worse.number), "drift_status", "drift")
    with pytest.raises(PromotionRefused, match="found drift") as refused:
        registry.promote(worse, "challenger", reason="try it")
    assert refused.value.gates == ("drift",)
    with pytest.raises(OverrideNeedsReason):
        registry.promote(worse, "champion", override=True, reason="  ")

    promotion = registry.promote(worse, "champion", reason="metric from an older month",
                                 by="bob", override=True)
    assert promotion.overridden == ("metric", "drift")
    assert "champion" in registry.resolve(str(worse.full_name)).aliases
    tags = registry.client.get_model_version(unique_instance, str(worse.number)).tags
    assert tags[f"{AUDIT_PREFIX}.champion.override"] == "metric,drift"
    assert tags[f"{AUDIT_PREFIX}.champion.reason"] == "metric from an older month"
    assert tags[f"{AUDIT_PREFIX}.champion.by"] == "bob"

    # Back to the better one: no gate fails, and the audit trail says no override.
    registry.promote(good, "champion", by="alice")
    tags = registry.client.get_model_version(unique_instance, str(good.number)).tags
    assert tags[f"{AUDIT_PREFIX}.champion.override"] == "-"
    assert tags[f"{AUDIT_PREFIX}.champion.replaced"] == worse.full_name


def test_compare_sorts_by_the_primary_metric(registry, unique_instance):
    low, _, _ = _register(registry, ModelName(unique_instance, "v1", "20240131"), metric=0.61)
    high, _, _ = _register(registry, ModelName(unique_instance, "v2", "20240131"), metric=0.83, seed=1)
    none, _, _ = _register(registry, ModelName(unique_instance, "v3", "20240131"), seed=2)

    ranked = registry.compare(unique_instance)
    assert [i.number for i in ranked] == [high.number, low.number, none.number]
    assert registry.best([str(low.full_name), str(high.full_name)]).number == high.number


def test_unsupported_models_are_refused_before_anything_is_logged(registry, unique_instance):
    run_id = tracking.start_run(registry.client, unique_instance, "x", {})
    with pytest.raises(UnsupportedModel, match="scikit-learn"):
        registry.register(object(), ModelName(unique_instance, "v1", "20240131"), run_id=run_id)
    with pytest.raises(ModelNotFound):
        registry.list_instances(unique_instance)
