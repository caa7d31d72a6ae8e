"""Retrain proposals without a server: the same rows, the rule, the record, the webhook, the
performance seam."""
from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from workbench.config import Settings
from workbench.errors import PromotionRefused, WorkbenchError
from workbench.policy.proposals import (
    Proposal,
    _decide,
    _Judged,
    evaluation_period,
    heldout_index,
    notify,
    performance_verdict,
    score,
    sign,
)
from workbench.policy.schema import Policy
from workbench.registry import Instance

POLICY = {"instance": "churn", "data": {"path": "data/churn_{data_date}.csv",
                                        "label_column": "churned"}}


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings.from_env(environ={}, cwd=tmp_path, **overrides)


def _policy(**changes: Any) -> Policy:
    return Policy.model_validate({**POLICY, **changes})


def _instance(number: int, data_date: str = "20240229") -> Instance:
    return Instance(registered_model="churn", number=number,
                    full_name=f"churn_v2_{data_date}", model_version="v2", data_date=data_date,
                    run_id=f"run{number}", source="")


def test_the_held_out_rows_are_those_the_train_notebook_holds_out():
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=400), "churned": rng.integers(0, 2, 400)})
    # As notebooks/train.ipynb splits: features and label, stratified on the label.
    _, X_test, _, _ = train_test_split(frame[["x"]], frame["churned"], test_size=0.25,
                                       random_state=42, stratify=frame["churned"])
    assert sorted(heldout_index(frame, "churned", 0.25, 42)) == sorted(X_test.index)
    assert sorted(heldout_index(frame, "churned", 0.25, 7)) != sorted(X_test.index)
    # A regressor's notebook does not stratify (it could not on a continuous target).
    _, X_test, _, _ = train_test_split(frame[["x"]], frame["x"], test_size=0.25, random_state=42)
    assert sorted(heldout_index(frame, "x", 0.25, 42, stratify=False)) == sorted(X_test.index)


def test_metrics_on_the_scored_rows():
    scored = pd.DataFrame({"prediction": [1, 0, 1, 0], "probability": [0.9, 0.2, 0.6, 0.4],
                           "model_name": "m"})
    truth = pd.Series([1, 0, 0, 0])
    assert score("roc_auc", truth, scored) == pytest.approx(1.0)
    assert score("accuracy", truth, scored) == pytest.approx(0.75)
    assert score("rmse", pd.Series([1.0, 0.0, 0.0, 0.0]), scored) == pytest.approx(0.5)
    assert score("f1_macro", truth, scored) == pytest.approx(0.7333, abs=1e-4)
    with pytest.raises(WorkbenchError, match="cannot compute the primary metric 'auc'"):
        score("auc", truth, scored)
    with pytest.raises(WorkbenchError, match="needs probabilities"):
        score("roc_auc", truth, scored.drop(columns="probability"))


def test_the_evaluation_period_is_the_newest_labelled_one(tmp_path):
    settings = _settings(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    pd.DataFrame({"x": [1, 2], "churned": [0, 1]}).to_csv(data / "churn_20240229.csv", index=False)
    pd.DataFrame({"x": [1, 2], "churned": [None, None]}).to_csv(data / "churn_20240331.csv",
                                                                index=False)
    pd.DataFrame({"x": [1, 2]}).to_csv(data / "churn_20240430.csv", index=False)
    assert evaluation_period(_policy(), settings, "20240430") == (
        "20240229", data / "churn_20240229.csv")
    with pytest.raises(WorkbenchError, match="no labelled period to judge on: none of 20240430, "
                                             "20240331"):
        evaluation_period(_policy(evaluation={"lookback": 2}), settings, "20240430")
    fixed = _policy(evaluation={"data": "2024-03-31"})
    with pytest.raises(WorkbenchError, match="evaluation period 20240331 has no labelled file"):
        evaluation_period(fixed, settings, "20240430")


class FakeRegistry:
    """Refuses the aliases it is told to; records what it was asked."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.refuse, self.calls = refuse, []

    def promote(self, candidate: Instance, alias: str, **kwargs: Any) -> None:
        self.calls.append((alias, kwargs))
        if alias in self.refuse:
            raise PromotionRefused(f"{alias} not moved to {candidate.label}: it is worse",
                                   ("metric",), alias, candidate.label)


JUDGED = _Judged(candidate=0.84, current=0.83, current_number=1, rows=1250,
                 data="20240430: churn_20240430.csv, 1250 labelled rows")


def test_the_rule_by_default_makes_a_challenger_and_never_overrides(tmp_path):
    registry = FakeRegistry()
    decision, reason = _decide(_policy(), _settings(tmp_path), registry, _instance(3),
                               _instance(1, "20240131"), JUDGED, "drift: x")
    assert decision == "challenger"
    [(alias, kwargs)] = registry.calls
    assert alias == "challenger" and "override" not in kwargs
    assert kwargs["same_data"].candidate == 0.84 and kwargs["same_data"].current_number == 1
    assert kwargs["by"] == "workbench policy"
    assert "roc_auc 0.8400 against the champion's 0.8300 on the same 1250 rows" in reason


def test_champion_auto_tries_champion_first_and_falls_back_when_a_gate_refuses(tmp_path):
    policy = _policy(promotion={"champion": "auto"})
    registry = FakeRegistry()
    assert _decide(policy, _settings(tmp_path), registry, _instance(3),
                   _instance(1, "20240131"), JUDGED, "t")[0] == "champion"
    registry = FakeRegistry(refuse=("champion",))
    decision, reason = _decide(policy, _settings(tmp_path), registry, _instance(3),
                               _instance(1, "20240131"), JUDGED, "t")
    assert decision == "challenger" and "not champion: champion not moved" in reason
    registry = FakeRegistry(refuse=("champion", "challenger"))
    decision, reason = _decide(policy, _settings(tmp_path), registry, _instance(3),
                               _instance(1, "20240131"), JUDGED, "t")
    assert decision == "none" and reason.startswith("refused by the gates")


def test_manual_promotion_leaves_the_candidate_to_a_human(tmp_path):
    registry = FakeRegistry()
    decision, reason = _decide(_policy(promotion={"challenger": "manual"}), _settings(tmp_path),
                               registry, _instance(3), _instance(1, "20240131"), JUDGED, "t")
    assert decision == "none" and registry.calls == []
    assert "workbench models promote churn_v2_20240229 --alias challenger" in reason


def _proposal() -> Proposal:
    return Proposal(id="20240501T060000000000Z-abc", instance="churn", trigger="drift",
                    data_date="20240430", candidate="churn_v2_20240430",
                    champion="churn_v2_20240229", metric="roc_auc", candidate_value=0.84,
                    champion_value=0.83, evaluation="20240430: ...", rows=1250, agreement=0.9,
                    agreement_rows=5000, decision="challenger", reason="why", at="2024-05-01",
                    run_ids=("r1",))


def test_a_proposal_round_trips_through_its_tag():
    proposal = _proposal()
    assert Proposal.from_json(proposal.to_json()) == proposal
    assert Proposal.from_json("{not json") is None
    assert proposal.tag_key == "workbench.proposal.20240501T060000000000Z-abc"
    assert proposal.summary() == (
        "proposal churn_v2_20240430: challenger (roc_auc 0.8400 vs champion 0.8300 on the same "
        "1250 rows, agreement 90.0% on 5000 logged rows)")


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[bytes, str]]] = []
    failures_left = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Hook.failures_left > 0:
            _Hook.failures_left -= 1
            self.send_response(503)
        else:
            _Hook.received.append((body, self.headers["X-Workbench-Signature"]))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.received, _Hook.failures_left = [], 0
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


def test_the_webhook_gets_a_signed_body_after_retries(tmp_path, hook, caplog):
    settings = _settings(tmp_path, webhook_url=hook, webhook_secret="s3cret")
    _Hook.failures_left = 2
    with caplog.at_level("WARNING", logger="workbench.policy"):
        thread = notify(settings, _proposal(), attempts=3, backoff_s=0.01)
        assert thread is not None
        thread.join(10)
    [(body, signature)] = _Hook.received
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature == expected == sign("s3cret", body)
    assert json.loads(body)["proposal"]["candidate"] == "churn_v2_20240430"
    assert sum("attempt" in r.message and "failed" in r.message for r in caplog.records) == 2


def test_a_webhook_that_never_answers_is_logged_and_does_not_raise(tmp_path, caplog):
    from workbench.platforms.embedded import free_port

    settings = _settings(tmp_path, webhook_url=f"http://127.0.0.1:{free_port()}/x",
                         webhook_secret="k")
    with caplog.at_level("WARNING", logger="workbench.policy"):
        thread = notify(settings, _proposal(), attempts=2, backoff_s=0.01)
        thread.join(10)
    assert any("not delivered" in r.message and "after 2 attempts" in r.message
               for r in caplog.records)


def test_no_url_sends_nothing_and_no_secret_sends_nothing_unsigned(tmp_path, caplog):
    assert notify(_settings(tmp_path), _proposal()) is None
    with caplog.at_level("ERROR", logger="workbench.policy"):
        assert notify(_settings(tmp_path, webhook_url="http://127.0.0.1:9/x"), _proposal()) is None
    assert any("webhook_secret is empty" in r.message for r in caplog.records)


def test_the_performance_check_is_called_with_the_policy_trigger(tmp_path):
    settings = _settings(tmp_path)
    calls = []

    def fake(ref: str, settings: Settings, **kwargs: Any) -> Any:
        calls.append((ref, kwargs))
        return SimpleNamespace(fired=True, reason="roc_auc 0.71 < 0.80 in 2024-04", value=0.71)

    policy = _policy(triggers={"performance": {"below": 0.8, "drop": 0.05, "window": "week"}})
    verdict = performance_verdict(policy, settings, "20240430", check=fake)
    assert verdict.fired and verdict.value == 0.71 and "0.71 < 0.80" in verdict.reason
    assert calls == [("churn@champion", {"metric": "roc_auc", "threshold": 0.8, "margin": 0.05,
                                          "window": "week"})]
    with pytest.raises(WorkbenchError, match=r"needs triggers\.performance"):
        performance_verdict(_policy(), settings, "20240430", check=fake)

