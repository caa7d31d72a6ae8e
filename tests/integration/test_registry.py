"""The registry under the naming convention, against a real mlflow server."""
from __future__ import annotations

from collections import Counter

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
from workbench.registry import AUDIT_PREFIX, HISTORY_PREFIX, SERIALIZATION_TAG, Registry

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


class _Counting:
    """A real MlflowClient that counts the calls made through it."""

    def __init__(self, client) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def counted(*args, **kwargs):
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return counted


def test_listing_crosses_pages_without_one_request_per_version(registry, unique_instance,
                                                               settings):
    names = [ModelName(unique_instance, f"v{n}", "20240131") for n in range(1, 6)]
    for n, name in enumerate(names):
        _register(registry, name, metric=0.5 + n / 100, seed=n)
    _register(registry, ModelName(f"{unique_instance}-b", "v1", "20240131"))
    _register(registry, ModelName(f"{unique_instance}-c", "v1", "20240131"))

    counting = _Counting(registry.client)
    small = Registry(settings, client=counting, page_size=2)
    instances = small.list_instances(unique_instance)
    assert [i.full_name for i in instances] == [str(n) for n in reversed(names)]
    assert [i.metrics["roc_auc"] for i in instances] == pytest.approx([0.54, 0.53, 0.52, 0.51, 0.5])
    assert counting.calls["search_model_versions"] == 3  # 5 versions, 2 a page
    assert counting.calls["get_run"] == 0 and counting.calls["search_runs"] == 1

    # Every registered model, two a page, is the same list as one big page gives.
    everything = small.registered_models()
    assert {unique_instance, f"{unique_instance}-b", f"{unique_instance}-c"} <= set(everything)
    assert everything == registry.registered_models()
    assert counting.calls["search_registered_models"] >= len(everything) // 2  # page by page
    all_instances = small.list_instances()
    assert {i.full_name for i in all_instances} >= {str(n) for n in names}


def test_models_are_saved_with_skops_and_predict_the_same_after_reload(registry, unique_instance,
                                                                       settings):
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    X, y = _frame(4)
    X["c"] = np.where(X.a > 0.5, "high", "low")
    pipeline = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), ["a", "b"]),
                           ("cat", OneHotEncoder(handle_unknown="ignore"), ["c"])]),
        HistGradientBoostingClassifier(max_iter=20),
    ).fit(X, y)
    # A lambda exists only in this process: skops cannot keep it, cloudpickle must.
    with_code = make_pipeline(FunctionTransformer(lambda frame: frame[["a", "b"]]),
                              LogisticRegression()).fit(X, y)
    mlflow.set_tracking_uri(settings.tracking_uri)
    for version, model, expected in (("v1", pipeline, "skops"), ("v2", with_code, "cloudpickle")):
        name = ModelName(unique_instance, version, "20240131")
        run_id = tracking.start_run(registry.client, unique_instance, str(name), {})
        instance = registry.register(model, name, run_id=run_id, input_example=X)
        assert instance.serialization == expected
        assert registry.resolve(str(name)).tags[SERIALIZATION_TAG] == expected
        assert instance.as_dict()["serialization"] == expected
        loaded = mlflow.pyfunc.load_model(instance.uri)
        assert loaded.metadata.flavors["sklearn"]["serialization_format"] == expected
        assert list(loaded.predict(X)) == list(model.predict(X))
    flavor = mlflow.pyfunc.load_model(f"models:/{unique_instance}/1").metadata.flavors["sklearn"]
    assert flavor["skops_trusted_types"] == [
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


def test_the_history_keeps_every_promotion_in_order(registry, unique_instance):
    a, _, _ = _register(registry, ModelName(unique_instance, "v1", "20240131"), metric=0.6)
    b, _, _ = _register(registry, ModelName(unique_instance, "v2", "20240131"), metric=0.8, seed=1)
    registry.promote(a, "champion", reason="first", by="alice")
    registry.promote(b, "challenger", reason="try it", by="bob")
    registry.promote(b, "champion", reason="better", by="bob")
    registry.promote(a, "champion", reason="v2 misbehaves", by="carol", override=True)

    history = registry.history(unique_instance)
    assert [(r.alias, r.from_version, r.to_version, r.by, r.reason, r.overridden)
            for r in history] == [
        ("champion", None, a.number, "alice", "first", ()),
        ("challenger", None, b.number, "bob", "try it", ()),
        ("champion", a.number, b.number, "bob", "better", ()),
        ("champion", b.number, a.number, "carol", "v2 misbehaves", ("metric",)),
    ]
    assert [r.id for r in history] == sorted(r.id for r in history)
    assert len(registry.history(unique_instance, "champion")) == 3
    # One registered-model tag per promotion: none was overwritten.
    tags = registry.client.get_registered_model(unique_instance).tags
    assert sum(k.startswith(HISTORY_PREFIX) for k in tags) == 4
    with pytest.raises(ModelNotFound, match="no registered model"):
        registry.history(f"{unique_instance}-none")
