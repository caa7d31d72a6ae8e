"""Policy files: what they may say, and one line per problem from `workbench policy check`."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.policy.schema import (
    PolicyError,
    Schedule,
    check_policy_file,
    cron_trigger,
    load_policies,
    load_policy,
    period_before,
)

GOOD = """\
instance: churn
timezone: Europe/Amsterdam
data:
  path: data/churn_{data_date}.csv
  label_column: churned
schedules:
  drift: {cron: "0 6 1 * *"}
  batch: {cron: "0 5 1 * *", timezone: UTC}
  performance: {cron: "0 7 * * mon"}
triggers:
  performance: {below: 0.8, drop: 0.03}
retrain:
  version: v2
  parameters: {algorithm: gradient_boosting, hyperparameters: {max_iter: 100}}
promotion: {champion: auto}
"""


def write(tmp_path: Path, text: str, name: str = "churn.yaml") -> Path:
    path = tmp_path / "policies" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_a_good_policy_loads_with_its_defaults(tmp_path):
    policy = load_policy(write(tmp_path, GOOD), tmp_path)
    assert policy.instance == "churn"
    assert policy.schedule_timezone("drift") == "Europe/Amsterdam"
    assert policy.schedule_timezone("batch") == "UTC"
    assert policy.retrain.notebook == "notebooks/train.ipynb"
    assert policy.retrain.version == "v2"
    assert policy.triggers.drift is True and policy.triggers.performance.window == "month"
    assert policy.evaluation.data == "newest_labelled"
    assert (policy.promotion.challenger, policy.promotion.champion) == ("auto", "auto")
    assert policy.data_path("20240430", tmp_path) == tmp_path / "data" / "churn_20240430.csv"


def test_the_shipped_policy_checks(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    assert check_policy_file(repo / "policies" / "churn.yaml", repo)[1] == []


@pytest.mark.parametrize(("change", "expected"), [
    (("instance: churn", "instance: churn_eu"), "instance: instance 'churn_eu' contains '_'"),
    (("instance: churn", "instance: Churn"), "instance: instance 'Churn' is not a lowercase slug"),
    (('cron: "0 6 1 * *"', 'cron: "0 6 1 *"'), "schedules.drift: bad cron expression '0 6 1 *'"),
    (('cron: "0 6 1 * *"', 'cron: "0 25 1 * *"'), "schedules.drift: bad cron expression"),
    (("timezone: Europe/Amsterdam", "timezone: Mars/Olympus"),
     "timezone: unknown time zone 'Mars/Olympus'"),
    (("retrain:", "retrain:\n  notebook: notebooks/nope.ipynb"),
     "retrain: unknown notebook 'notebooks/nope.ipynb'"),
    (("algorithm: gradient_boosting", "algorithm: gradient_boosting, lr: 0.1"),
     "retrain: parameters: train.ipynb has no parameter 'lr'"),
    (("max_iter: 100}", "max_iter: 100}, seed: forty-two"),
     "retrain: parameters: parameter 'seed' expects int"),
    (("algorithm: gradient_boosting", "algorithm: gradient_boosting, data_date: '20240101'"),
     "retrain: parameters: 'data_date' set by the scheduler"),
    (("version: v2", "version: v0"), "retrain.version: version 'v0' is not v<N>"),
    (("path: data/churn_{data_date}.csv", "path: data/churn.csv"),
     "data.path: path 'data/churn.csv' must hold {data_date}"),
    (("label_column: churned", "label_column: churned\n  labels_late: true"),
     "data.labels_late: unknown key"),
    (("  performance: {below: 0.8, drop: 0.03}", "  performance: {window: month}"),
     "triggers.performance: set below (a threshold) or drop (a margin)"),
    (('  performance: {cron: "0 7 * * mon"}\n', ""), "triggers.performance and schedules."
                                                    "performance go together"),
    (("promotion: {champion: auto}", "promotion: {champion: always}"),
     "promotion.champion: Input should be 'auto' or 'manual'"),
])
def test_each_problem_is_one_line_naming_where(tmp_path, change, expected):
    path = write(tmp_path, GOOD.replace(*change))
    _, problems = check_policy_file(path, tmp_path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"policies/churn.yaml: {expected}"), problems[0]


def test_a_file_that_is_no_mapping_or_no_yaml_is_one_line(tmp_path):
    assert check_policy_file(write(tmp_path, "- a\n- b\n"), tmp_path)[1] == [
        "policies/churn.yaml: must be a YAML mapping (instance: ..., data: ..., schedules: ...)"]
    problems = check_policy_file(write(tmp_path, "instance: [\n"), tmp_path)[1]
    assert len(problems) == 1 and "is not valid YAML at line" in problems[0]
    assert "cannot be read" in check_policy_file(tmp_path / "missing.yaml", tmp_path)[1][0]


def test_missing_keys_are_named(tmp_path):
    problems = check_policy_file(write(tmp_path, "instance: churn\ndata: {path: 'x_{data_date}'}\n"),
                                 tmp_path)[1]
    assert problems == ["policies/churn.yaml: data.label_column: required; add it"]


def test_two_policies_of_one_instance_are_refused(tmp_path):
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD, "b.yaml")
    with pytest.raises(PolicyError) as error:
        load_policies(tmp_path)
    assert error.value.problems == [
        "policies/b.yaml: instance 'churn' has a policy already in policies/a.yaml; keep one "
        "policy per instance"]
    assert error.value.exit_code == 2


def test_policy_check_prints_one_line_per_problem_and_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_PROJECT_ROOT", str(tmp_path))
    write(tmp_path, GOOD, "good.yaml")
    write(tmp_path, GOOD.replace("churn", "other").replace('"0 6 1 * *"', '"61 * * * *"')
          .replace("version: v2", "version: v2\n  notebook: nb.ipynb"), "bad.yaml")
    with pytest.raises(SystemExit) as exit_:
        main(["policy", "check"])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("error: policies/bad.yaml: schedules.drift: bad cron expression")
    assert lines[1].startswith("error: policies/bad.yaml: retrain: unknown notebook 'nb.ipynb'")
    assert out.startswith(f"ok: {tmp_path / 'policies' / 'good.yaml'} (instance churn;")


def test_policy_check_of_good_files_exits_0(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_PROJECT_ROOT", str(tmp_path))
    path = write(tmp_path, GOOD)
    main(["policy", "check", str(path)])
    assert "drift '0 6 1 * *' Europe/Amsterdam" in capsys.readouterr().out


@pytest.mark.parametrize(("day", "rule", "expected"), [
    (dt.date(2024, 5, 1), "month_end", "20240430"),
    (dt.date(2024, 4, 30), "month_end", "20240331"),  # April is not over on its last day
    (dt.date(2024, 3, 15), "month_end", "20240229"),
    (dt.date(2024, 1, 1), "month_end", "20231231"),
    (dt.date(2024, 5, 1), "day", "20240430"),
    (dt.date(2024, 5, 1), "week_end", "20240428"),  # a Wednesday: the Sunday before
    (dt.date(2024, 4, 28), "week_end", "20240421"),  # a Sunday: the one before
])
def test_the_period_a_fire_works_on(day, rule, expected):
    assert period_before(day, rule) == expected


def test_the_period_is_taken_in_the_policy_time_zone(tmp_path):
    policy = load_policy(write(tmp_path, GOOD), tmp_path)
    # 23:30 UTC on 30 April is already 1 May in Amsterdam: April is complete there.
    assert policy.data_date_at(dt.datetime(2024, 4, 30, 23, 30, tzinfo=dt.timezone.utc)) == "20240430"
    assert policy.data_date_at(dt.datetime(2024, 4, 30, 20, 0, tzinfo=dt.timezone.utc)) == "20240331"
    assert policy.previous_data_date("20240430") == "20240331"


def test_six_cron_fields_put_seconds_first():
    trigger = cron_trigger(Schedule(cron="*/5 * * * * *"), "UTC")
    start = dt.datetime(2024, 1, 1, 0, 0, 1, tzinfo=dt.timezone.utc)
    first = trigger.get_next_fire_time(None, start)
    assert first == dt.datetime(2024, 1, 1, 0, 0, 5, tzinfo=dt.timezone.utc)
    daily = cron_trigger(Schedule(cron="0 6 * * *", timezone="Europe/Amsterdam"), "UTC")
    assert daily.get_next_fire_time(None, start).utcoffset() == dt.timedelta(hours=1)
