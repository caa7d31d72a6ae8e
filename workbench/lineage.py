"""Lineage: where a model came from, as flat string tags an MLflow run can hold.

Every run records the notebook (path, sha256 of its content), the git commit and whether
the tree was dirty, the input data (path, sha256, row count), the executor and the
workbench version. The same keys are copied onto the model version at registration so
that the registry alone answers "which code and data made this instance".
"""
from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

from workbench._version import __version__

PREFIX = "workbench."
NOTEBOOK_PATH = PREFIX + "notebook.path"
NOTEBOOK_SHA256 = PREFIX + "notebook.sha256"
GIT_COMMIT = PREFIX + "git.commit"
GIT_DIRTY = PREFIX + "git.dirty"
DATA_PATH = PREFIX + "data.path"
DATA_SHA256 = PREFIX + "data.sha256"
DATA_ROWS = PREFIX + "data.rows"
EXECUTOR = PREFIX + "executor"
WORKBENCH_VERSION = PREFIX + "version"
OUTPUT_NOTEBOOK = PREFIX + "job.output_notebook"
#: ``host:pid`` of the process that started (or resumed) the run: a RUNNING run whose
#: process is gone is stale (``workbench runs stale``).
PROCESS = PREFIX + "process"

# Tags carried over from the run to the model version it produced.
MODEL_VERSION_LINEAGE_KEYS = (
    NOTEBOOK_PATH, NOTEBOOK_SHA256, GIT_COMMIT, GIT_DIRTY,
    DATA_PATH, DATA_SHA256, DATA_ROWS, EXECUTOR, WORKBENCH_VERSION,
)


@dataclass(frozen=True)
class GitState:
    commit: str | None
    dirty: bool | None


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def git_state(path: Path) -> GitState:
    """The commit checked out where ``path`` lives, and whether the work tree is dirty.

    Outside a repository (or without git) both are ``None``: lineage says "unknown"
    instead of failing a training run.
    """
    folder = path if path.is_dir() else path.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return GitState(None, None)
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder, capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return GitState(None, None)
    return GitState(commit.stdout.strip(), bool(status.stdout.strip()))


def count_rows(path: Path) -> int:
    """Rows of a CSV (lines after the header) or a Parquet file (from its footer)."""
    if path.suffix.lower() in {".parquet", ".pq"}:
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    with open(path, "rb") as handle:
        lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
        handle.seek(0, 2)
        size = handle.tell()
        if size:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":
                lines += 1  # a last line without a newline still counts
    return max(lines - 1, 0)


def notebook_tags(notebook: Path) -> dict[str, str]:
    """Tags for the notebook (or script) that produced a run."""
    notebook = notebook.resolve()
    tags = {
        NOTEBOOK_PATH: str(notebook),
        "mlflow.source.name": str(notebook),
    }
    if notebook.is_file():
        tags[NOTEBOOK_SHA256] = file_sha256(notebook)
    git = git_state(notebook)
    if git.commit:
        tags[GIT_COMMIT] = git.commit
        tags["mlflow.source.git.commit"] = git.commit
    if git.dirty is not None:
        tags[GIT_DIRTY] = str(git.dirty).lower()
    return tags


def data_tags(path: Path, rows: int | None = None) -> dict[str, str]:
    """Tags for a training input file; ``rows`` skips counting when the caller knows it."""
    path = path.resolve()
    return {
        DATA_PATH: str(path),
        DATA_SHA256: file_sha256(path),
        DATA_ROWS: str(count_rows(path) if rows is None else rows),
    }


def runtime_tags(executor: str) -> dict[str, str]:
    import os
    import socket

    return {EXECUTOR: executor, WORKBENCH_VERSION: __version__,
            PROCESS: f"{socket.gethostname()}:{os.getpid()}"}
