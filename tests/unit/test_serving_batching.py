"""Micro-batching with a fake model: merging, order, rescoring one by one, timeouts."""
from __future__ import annotations

import asyncio
import threading
import time

import orjson
import pytest

from workbench.serving.batching import Batcher
from workbench.serving.metrics import ServingMetrics
from workbench.serving.model import ModelMetadata
from workbench.serving.protocol import Column, Limits
from workbench.serving.scorer import Prepared, Reply, Scorer


class FakeModel:
    """2x per row; raises when any row is over 100; blocks while ``gate`` is closed."""

    def __init__(self, name: str = "fake_v1_20240101") -> None:
        self.metadata = ModelMetadata(name, "fake", "v1", "20240101", "fake", 1, None, "src")
        self.schema = [Column("x", "float", nullable=True)]
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    @property
    def name(self) -> str:
        return self.metadata.full_name

    def predict(self, batch):
        self.gate.wait()
        self.calls.append(batch.rows)
        if any(x > 100 for x in batch.values["x"]):
            raise ValueError("too large")
        return [x * 2 for x in batch.values["x"]]

    def predict_scored(self, batch):
        """The predictions, and a 'probability' of x / 1000 per row."""
        return self.predict(batch), [x / 1000 for x in batch.values["x"]]

    def warm_up(self) -> None:
        pass


def _scorer(model: FakeModel) -> Scorer:
    return Scorer(model, Limits(), None, ServingMetrics())  # type: ignore[arg-type]


def _prepared(scorer: Scorer, *xs: float, rid: str = "r") -> Prepared:
    body = orjson.dumps({"dataframe_split": {"columns": ["x"], "data": [[x] for x in xs]}})
    prepared = scorer.prepare(body, "application/json", rid)
    assert isinstance(prepared, Prepared)
    return prepared


def _predictions(reply: Reply) -> list:
    return orjson.loads(reply.body)["predictions"]


def test_a_merged_batch_is_split_back_in_order() -> None:
    model = FakeModel()
    scorer = _scorer(model)
    replies = scorer.score([_prepared(scorer, 1, 2), _prepared(scorer, 3), _prepared(scorer, 4, 5, 6)])
    assert model.calls == [6]
    assert [_predictions(r) for r in replies] == [[2, 4], [6], [8, 10, 12]]
    assert {r.model_name for r in replies} == {"fake_v1_20240101"}


class _Log:
    def __init__(self) -> None:
        self.records: list = []

    def submit(self, record) -> None:
        self.records.append(record)


def test_each_request_is_logged_with_its_own_share_of_the_scores() -> None:
    log = _Log()
    scorer = Scorer(FakeModel(), Limits(), log, ServingMetrics())  # type: ignore[arg-type]
    scorer.score([_prepared(scorer, 1, 2, rid="a"), _prepared(scorer, 3, rid="b")])
    assert [(r.request_id, r.outputs, r.scores) for r in log.records] == [
        ("a", [2, 4], [0.001, 0.002]), ("b", [6], [0.003])]


def test_a_failing_merged_batch_is_rescored_one_by_one() -> None:
    model = FakeModel()
    scorer = _scorer(model)
    replies = scorer.score([_prepared(scorer, 1), _prepared(scorer, 500, rid="bad"),
                            _prepared(scorer, 3)])
    assert model.calls == [3, 1, 1, 1]
    assert [r.status for r in replies] == [200, 500, 200]
    assert b"bad" in replies[1].body and _predictions(replies[2]) == [6]


def test_requests_with_other_columns_are_not_merged() -> None:
    model = FakeModel()
    model.schema = [Column("x", "float", True), Column("y", "float", True, required=False)]
    scorer = _scorer(model)
    with_y = scorer.prepare(orjson.dumps({"dataframe_records": [{"x": 1.0, "y": 2.0}]}),
                            "application/json", "a")
    replies = scorer.score([_prepared(scorer, 1), with_y, _prepared(scorer, 2)])
    assert sorted(model.calls) == [1, 2] and [_predictions(r) for r in replies] == [[2], [2], [4]]


def test_an_idle_server_scores_at_once_and_a_busy_one_merges_what_waits() -> None:
    model = FakeModel()
    scorer = _scorer(model)
    batcher = Batcher(scorer, max_rows=3)

    async def scenario() -> list[Reply]:
        model.gate.clear()
        first = asyncio.ensure_future(batcher.submit(_prepared(scorer, 1)))
        await asyncio.sleep(0.05)  # the first call is in the model, blocked
        rest = [asyncio.ensure_future(batcher.submit(_prepared(scorer, x))) for x in (2, 3, 4, 5)]
        await asyncio.sleep(0.05)
        model.gate.set()
        return [await first, *[await r for r in rest]]

    replies = asyncio.run(scenario())
    assert [_predictions(r) for r in replies] == [[2], [4], [6], [8], [10]]
    assert model.calls == [1, 3, 1]  # alone, then up to max_rows, then the rest
    batcher.shutdown()


def test_a_request_over_the_timeout_is_a_504_and_its_result_is_dropped() -> None:
    model = FakeModel()
    scorer = _scorer(model)
    batcher = Batcher(scorer, timeout_ms=100)

    async def scenario() -> tuple[Reply, bool, Reply]:
        model.gate.clear()
        slow = await batcher.submit(_prepared(scorer, 1, rid="slow-1"))
        stuck = batcher.stuck
        model.gate.set()
        await asyncio.sleep(0.05)
        return slow, stuck, await batcher.submit(_prepared(scorer, 7))

    slow, stuck, after = asyncio.run(scenario())
    assert slow.status == 504 and orjson.loads(slow.body)["error_code"] == "TIMEOUT"
    assert b"slow-1" in slow.body and stuck
    assert after.status == 200 and _predictions(after) == [14] and not batcher.stuck
    batcher.shutdown()


@pytest.mark.parametrize("rows", [1, 5])
def test_a_request_larger_than_max_rows_is_scored_alone(rows: int) -> None:
    model = FakeModel()
    scorer = _scorer(model)
    batcher = Batcher(scorer, max_rows=2)

    async def scenario() -> Reply:
        return await batcher.submit(_prepared(scorer, *range(1, rows + 1)))

    assert _predictions(asyncio.run(scenario())) == [2 * x for x in range(1, rows + 1)]
    assert model.calls == [rows]
    batcher.shutdown()


def test_swap_serves_the_new_model_from_the_next_batch() -> None:
    old, new = FakeModel(), FakeModel("fake_v1_20240201")
    scorer = _scorer(old)
    assert scorer.score([_prepared(scorer, 1)])[0].model_name == "fake_v1_20240101"
    scorer.swap(new)
    assert scorer.score([_prepared(scorer, 1)])[0].model_name == "fake_v1_20240201"
    assert new.calls == [1] and old.calls == [1]
    assert b'workbench_model_info{model="fake_v1_20240201"} 1.0' in scorer.metrics.render()
    assert b"fake_v1_20240101" not in scorer.metrics.render()


def test_timing_is_per_request() -> None:
    model = FakeModel()
    scorer = _scorer(model)
    early = _prepared(scorer, 1)
    time.sleep(0.02)
    scorer.score([early, _prepared(scorer, 2)])
    text = scorer.metrics.render().decode()
    assert 'workbench_requests_total{status="200"} 2.0' in text
    assert "workbench_batch_rows_count 1.0" in text and "workbench_batch_rows_sum 2.0" in text
