"""`workbench new` and `workbench template update`: inference, validation, rendering, updating.

Rendering runs real copier and real git on temporary folders (a second or two each); the
notebooks of a rendered project are run by tests/integration/test_new_project.py.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from packaging.version import Version

from workbench import cli
from workbench._version import __version__
from workbench.config import Settings
from workbench.errors import ProjectError
from workbench.policy.schema import check_policy_file
from workbench.project import infer_plan, new_project, read_table, update_project
from workbench.project.render import PACKAGED_TEMPLATE

#: The tag of the packaged template (the workbench's version), and of the next content.
FIRST = Version(__version__).base_version
SECOND = f"{FIRST}.post1"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings whose template repository is a temporary folder (not the user's)."""
    for name in ("WORKBENCH_TEMPLATE_SOURCE", "WORKBENCH_TEMPLATE_REPOSITORY",
                 "WORKBENCH_PROJECT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORKBENCH_TEMPLATE_REPOSITORY", str(tmp_path / "template-repo"))
    (tmp_path / "here").mkdir()
    return Settings.from_env(cwd=tmp_path / "here")


def wine() -> pd.DataFrame:
    from sklearn.datasets import load_wine

    return load_wine(as_frame=True).frame


def diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True).frame


def customers(rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "customer_id": np.arange(rows),
        "email": [f"user{i}@example.org" for i in range(rows)],
        "age": rng.integers(18, 80, rows),
        "plan": rng.choice(["basic", "pro"], rows),
        "country": "NL",
        "signed_up": pd.date_range("2024-01-01", periods=rows, freq="D"),
        "churned": rng.choice(["yes", "no"], rows),
    })


# -- inference -----------------------------------------------------------------------------------
def test_wine_is_three_class_classification_on_f1_with_every_column_numeric():
    plan = infer_plan(wine(), "target")
    assert (plan.task, plan.classes, plan.primary_metric, plan.greater_is_better) == (
        "classification", 3, "f1_macro", True)
    assert len(plan.numeric) == 13 and plan.categorical == () and "target" not in plan.features


def test_diabetes_is_regression_on_rmse_lower_is_better():
    plan = infer_plan(diabetes(), "target")
    assert (plan.task, plan.classes, plan.primary_metric, plan.greater_is_better) == (
        "regression", None, "rmse", False)
    assert len(plan.numeric) == 10


def test_text_target_with_two_classes_is_binary_on_roc_auc_and_non_features_are_left_out():
    plan = infer_plan(customers(), "churned")
    assert (plan.task, plan.classes, plan.primary_metric) == ("classification", 2, "roc_auc")
    assert plan.numeric == ("age",) and plan.categorical == ("plan",)
    assert set(plan.ignored) == {"customer_id", "email", "country", "signed_up"}
    assert "identifier" in plan.ignored["customer_id"] and plan.ignored["country"] == "constant"


def test_overrides_win_over_inference():
    plan = infer_plan(wine(), "target", task="regression", numeric=["alcohol", "hue"],
                      metric="mae")
    assert (plan.task, plan.numeric, plan.primary_metric, plan.greater_is_better) == (
        "regression", ("alcohol", "hue"), "mae", False)


@pytest.mark.parametrize("frame, target, options, words", [
    (wine(), "quality", {}, "target column 'quality' is not in the data"),
    (customers(), "plan", {"task": "regression"}, "regression needs numbers"),
    (diabetes(), "target", {"task": "classification"}, "use --task regression"),
    (customers(), "country", {}, "single class"),
    (wine(), "target", {"metric": "rmse"}, "metric 'rmse' is not one a classification"),
    (wine(), "target", {"metric": "roc_auc"}, "cannot be the primary metric of 3 classes"),
    (wine(), "target", {"numeric": ["colour"]}, "feature column 'colour' is not in the data"),
    (customers(), "churned", {"numeric": ["plan"]}, "not numbers"),
    (pd.DataFrame({"t": [None, None], "x": [1, 2]}), "t", {}, "no values"),
])
def test_a_task_or_column_that_does_not_fit_is_one_line(frame, target, options, words):
    with pytest.raises(ProjectError, match=words) as caught:
        infer_plan(frame, target, **options)
    assert "\n" not in str(caught.value) and caught.value.exit_code == 2


def test_read_table_reads_csv_and_parquet_and_refuses_the_rest(tmp_path):
    wine().to_csv(tmp_path / "wine.csv", index=False)
    wine().to_parquet(tmp_path / "wine.parquet")
    assert read_table(tmp_path / "wine.csv").shape == read_table(tmp_path / "wine.parquet").shape
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "wine.xlsx").write_text("x")
    for name, words in [("broken.parquet", "cannot be read as PARQUET"),
                        ("empty.csv", "cannot be read as CSV"), ("missing.csv", "does not exist"),
                        ("wine.xlsx", "unsupported format")]:
        with pytest.raises(ProjectError, match=words):
            read_table(tmp_path / name)


# -- bad input to `workbench new`: one line, nothing written -------------------------------------
@pytest.fixture
def wine_csv(tmp_path: Path) -> Path:
    path = tmp_path / "wine.csv"
    wine().to_csv(path, index=False)
    return path


@pytest.mark.parametrize("case", ["non-empty folder", "bad instance", "unreadable data",
                                  "no such target", "regression on text", "data without target"])
def test_bad_input_writes_nothing(case, tmp_path, settings, wine_csv):
    target_dir = tmp_path / "project"
    kwargs: dict = {"data": wine_csv, "target": "target"}
    instance = "wine"
    if case == "non-empty folder":
        target_dir.mkdir()
        (target_dir / "notes.txt").write_text("mine")
    elif case == "bad instance":
        instance = "Wine_Quality"
    elif case == "unreadable data":
        kwargs["data"] = tmp_path / "garbage.parquet"
        kwargs["data"].write_bytes(b"\x00\x01 no parquet")
    elif case == "no such target":
        kwargs["target"] = "quality"
    elif case == "regression on text":
        customers().to_csv(tmp_path / "customers.csv", index=False)
        kwargs = {"data": tmp_path / "customers.csv", "target": "plan", "task": "regression"}
    else:
        kwargs = {"data": wine_csv}
    with pytest.raises(ProjectError) as caught:
        new_project(target_dir, instance, settings, **kwargs)
    assert "\n" not in str(caught.value)
    if case == "non-empty folder":
        assert [p.name for p in target_dir.iterdir()] == ["notes.txt"]
    else:
        assert not target_dir.exists()
    assert not (tmp_path / "template-repo").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".project-")) == []


def test_cli_says_bad_input_in_one_line_with_exit_status_2(tmp_path, settings, wine_csv, capsys,
                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        cli.main(["new", str(tmp_path / "p"), "--instance", "wine", "--data", str(wine_csv),
                  "--target", "colour"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2
    assert len(err) == 1 and err[0].startswith("error: target column 'colour' is not in the data")
    assert not (tmp_path / "p").exists()


# -- rendering -----------------------------------------------------------------------------------
def test_new_project_from_a_file_has_the_layout_settings_policy_and_a_first_commit(
        tmp_path, settings, wine_csv):
    made = new_project(tmp_path / "wine-project", "wine", settings, data=wine_csv,
                       target="target", data_date="20240131")
    root = made.path
    for name in ["data/raw", "data/processed", "reports", "notebooks/explore.ipynb",
                 "notebooks/train.ipynb", "notebooks/batch_predict.ipynb",
                 "notebooks/monitor.ipynb", "src/wine/features.py", "src/wine/training.py",
                 "src/wine/evaluation.py", "tests/test_training.py", "setup.cfg", ".env.example",
                 ".gitignore", ".pre-commit-config.yaml", "README.md", "policies/wine.yaml",
                 ".copier-answers.yml"]:
        assert (root / name).exists(), name
    # The data is the user's file byte for byte, under the naming of its cut-off.
    assert made.data_file == root / "data/raw/wine_20240131.csv"
    assert made.data_file.read_bytes() == wine_csv.read_bytes()
    # The project's settings: its primary metric and direction, read as the workbench reads them.
    project = Settings.from_env(environ={}, cwd=root / "notebooks")
    assert (project.project_root, project.primary_metric, project.greater_is_better,
            project.experiment) == (root, "f1_macro", True, "wine")
    # The policy checks as `workbench policy check` checks it.
    policy, problems = check_policy_file(root / "policies/wine.yaml", root)
    assert problems == [] and policy is not None and policy.data.label_column == "target"
    # Git: one commit holding the code, not the data nor secrets.
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True).stdout
    assert "src/wine/features.py" in tracked and "data/raw/wine_20240131.csv" not in tracked
    assert subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True,
                          text=True).stdout == ""
    assert "nbstripout" in (root / ".pre-commit-config.yaml").read_text()
    assert ".env" in (root / ".gitignore").read_text().split()
    answers = yaml.safe_load((root / ".copier-answers.yml").read_text())
    assert answers["_commit"] == made.template_version == FIRST
    assert answers["task"] == "classification" and len(answers["numeric"]) == 13


def test_example_regression_project(tmp_path, settings):
    made = new_project(tmp_path / "demand", "demand", settings, task="regression")
    assert made.example_data and made.plan.task == "regression"
    frame = pd.read_csv(made.data_file)
    assert len(frame) == 1000 and frame["target"].nunique() > 100
    features = (made.path / "src/demand/features.py").read_text()
    assert 'TASK = "regression"' in features and '"segment"' in features
    assert "greater_is_better = false" in (made.path / "setup.cfg").read_text()
    assert "algorithm = \\\"ridge\\\"" in (made.path / "notebooks/train.ipynb").read_text()


def test_a_machine_without_a_git_identity_commits_as_the_workbench(tmp_path, settings,
                                                                   monkeypatch):
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                 "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    made = new_project(tmp_path / "p", "p", settings)
    author = subprocess.run(["git", "log", "-1", "--format=%an <%ae>"], cwd=made.path,
                            capture_output=True, text=True).stdout.strip()
    assert made.fallback_identity and author == "mlops-workbench <mlops-workbench@localhost>"


# -- updating ------------------------------------------------------------------------------------
def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                          check=True).stdout


def changed_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A copy of the packaged template with a new file and a changed README, as the source."""
    source = tmp_path / "template-v2"
    shutil.copytree(PACKAGED_TEMPLATE, source)
    readme = source / "project" / "README.md.jinja"
    readme.write_text(readme.read_text().replace("## The cycle", "## The cycle (revised)"))
    (source / "project" / "CONTRIBUTING.md").write_text("Open a merge request.\n")
    monkeypatch.setenv("WORKBENCH_TEMPLATE_SOURCE", str(source))
    return Settings.from_env(cwd=tmp_path / "here")


def test_update_keeps_the_users_change_and_brings_the_templates(tmp_path, settings, monkeypatch):
    made = new_project(tmp_path / "p", "p", settings)
    training = made.path / "src/p/training.py"
    training.write_text(training.read_text().replace(
        "def estimators(", "# Tuned for our data.\ndef estimators("))
    git(made.path, "commit", "-qam", "our comment")

    done = update_project(made.path, changed_template(tmp_path, monkeypatch))
    assert (done.old_version, done.new_version, done.conflicts) == (FIRST, SECOND, ())
    assert "# Tuned for our data." in training.read_text()
    assert (made.path / "CONTRIBUTING.md").read_text() == "Open a merge request.\n"
    assert "## The cycle (revised)" in (made.path / "README.md").read_text()
    assert yaml.safe_load((made.path / ".copier-answers.yml").read_text())["_commit"] == SECOND
    assert {"CONTRIBUTING.md", "README.md", ".copier-answers.yml"} <= set(done.changed)

    git(made.path, "add", "-A")
    git(made.path, "commit", "-qm", "template v2")
    again = update_project(made.path, Settings.from_env(cwd=tmp_path / "here"))
    assert not again.updated and again.new_version == SECOND


def test_update_marks_a_conflict_where_both_changed_the_same_line(tmp_path, settings,
                                                                  monkeypatch):
    made = new_project(tmp_path / "p", "p", settings)
    readme = made.path / "README.md"
    readme.write_text(readme.read_text().replace("## The cycle", "## Our cycle"))
    git(made.path, "commit", "-qam", "our title")
    done = update_project(made.path, changed_template(tmp_path, monkeypatch))
    assert done.conflicts == ("README.md",)
    assert "<<<<<<< before updating" in readme.read_text()


def test_update_refuses_uncommitted_changes_and_foreign_folders(tmp_path, settings):
    made = new_project(tmp_path / "p", "p", settings)
    (made.path / "README.md").write_text("mine, not committed\n")
    with pytest.raises(ProjectError, match="uncommitted changes"):
        update_project(made.path, settings)
    assert (made.path / "README.md").read_text() == "mine, not committed\n"
    with pytest.raises(ProjectError, match="not made by `workbench new`"):
        update_project(tmp_path / "here", settings)


def test_a_released_version_is_the_same_tag_elsewhere_and_a_post_tag_is_not(tmp_path, settings,
                                                                          monkeypatch):
    made = new_project(tmp_path / "p", "p", settings)
    elsewhere = settings.replace(template_repository=tmp_path / "another-machine")
    assert update_project(made.path, elsewhere).new_version == FIRST  # nothing to do
    edited = new_project(tmp_path / "q", "q", changed_template(tmp_path, monkeypatch))
    assert edited.template_version == SECOND
    with pytest.raises(ProjectError, match="does not hold"):
        update_project(edited.path, elsewhere.replace(template_source=None))


def test_cli_update_lists_conflicts_and_exits_1(tmp_path, settings, monkeypatch, capsys):
    (tmp_path / "empty-before").mkdir()
    made = new_project(tmp_path / "empty-before", "p", settings)  # an empty folder is fine
    readme = made.path / "README.md"
    readme.write_text(readme.read_text().replace("## The cycle", "## Our cycle"))
    git(made.path, "commit", "-qam", "our title")
    changed_template(tmp_path, monkeypatch)
    monkeypatch.chdir(made.path)
    with pytest.raises(SystemExit) as exited:
        cli.main(["template", "update"])
    out = capsys.readouterr().out.splitlines()
    assert exited.value.code == 1
    assert out[0].endswith(f"template {FIRST} -> {SECOND}; 3 file(s) changed, not committed "
                           "(review with git diff)")
    assert out[1:] == ["conflict: README.md (resolve the <<<<<<< / >>>>>>> markers)"]
