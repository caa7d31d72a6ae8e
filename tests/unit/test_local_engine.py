"""The streaming local engine's reading and writing, on real files (no model)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from workbench.engines.local import TableWriter, iter_frames, resolve_dataset
from workbench.errors import WorkbenchError


def _parts(folder: Path, frames: list[pd.DataFrame], kind: str = "parquet") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n, frame in enumerate(frames):
        path = folder / f"part-{n:03d}.{kind}"
        frame.to_parquet(path) if kind == "parquet" else frame.to_csv(path, index=False)


def test_a_folder_or_a_glob_is_one_dataset_in_name_order(tmp_path):
    frames = [pd.DataFrame({"a": range(i * 10, i * 10 + 10)}) for i in range(3)]
    _parts(tmp_path / "data", frames)
    (tmp_path / "data" / "_SUCCESS").write_text("")
    (tmp_path / "data" / ".part-000.parquet.crc").write_text("")
    folder = resolve_dataset(tmp_path / "data")
    pattern = resolve_dataset(str(tmp_path / "data" / "part-*.parquet"))
    assert folder.files == pattern.files and len(folder.files) == 3
    assert folder.total_rows() == 30
    read = pd.concat([f for _, f in iter_frames(folder, batch_rows=4)])
    assert read.a.tolist() == list(range(30))


def test_frames_are_batches_whose_index_counts_the_rows_of_their_file(tmp_path):
    _parts(tmp_path / "csv", [pd.DataFrame({"a": range(7)}), pd.DataFrame({"a": range(5)})], "csv")
    dataset = resolve_dataset(tmp_path / "csv")
    assert dataset.kind == "csv" and dataset.total_rows() == 12
    batches = [(path.name, frame.index.tolist()) for path, frame in iter_frames(dataset, 3)]
    assert batches == [("part-000.csv", [0, 1, 2]), ("part-000.csv", [3, 4, 5]),
                       ("part-000.csv", [6]), ("part-001.csv", [0, 1, 2]),
                       ("part-001.csv", [3, 4])]


@pytest.mark.parametrize("make, message", [
    (lambda p: p.mkdir(), "holds no data files"),
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("x")), "holds no data files"),
    (lambda p: (_parts(p, [pd.DataFrame({"a": [1]})]), (p / "b.csv").write_text("a\n1\n")),
     "mixes CSV and Parquet"),
])
def test_folders_that_are_no_dataset_are_one_line(tmp_path, make, message):
    make(tmp_path / "in")
    with pytest.raises(WorkbenchError, match=message) as raised:
        resolve_dataset(tmp_path / "in")
    assert "\n" not in str(raised.value)


def test_a_glob_that_matches_nothing_and_a_missing_file_are_one_line(tmp_path):
    with pytest.raises(WorkbenchError, match="holds no data files"):
        resolve_dataset(str(tmp_path / "*.parquet"))
    with pytest.raises(WorkbenchError, match="does not exist"):
        resolve_dataset(tmp_path / "none.csv")


@pytest.mark.parametrize("name", ["out.csv", "out.parquet"])
def test_the_writer_writes_whole_or_not_at_all(tmp_path, name):
    target = tmp_path / "sub" / name
    with pytest.raises(RuntimeError):
        with TableWriter(target) as writer:
            writer.write(pd.DataFrame({"a": [1, 2]}))
            raise RuntimeError("a later batch failed")
    assert not target.exists() and not (tmp_path / "sub").exists()  # nor its new folder
    with TableWriter(target) as writer:
        writer.write(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
        # A later CSV chunk can read other types: a gap in whole numbers, numbers as text.
        writer.write(pd.DataFrame({"a": [3.0, None], "b": [7, 8]}))
    read = pd.read_csv(target) if name.endswith(".csv") else pd.read_parquet(target)
    assert len(read) == 4 and read.b.astype(str).tolist() == ["x", "y", "7", "8"]


def test_a_column_that_changes_kind_is_one_line_and_nothing_is_written(tmp_path):
    target = tmp_path / "out.parquet"
    with pytest.raises(WorkbenchError, match="column 'a' changes type") as raised:
        with TableWriter(target) as writer:
            writer.write(pd.DataFrame({"a": [1, 2]}))
            writer.write(pd.DataFrame({"a": ["x", "y"]}))
    assert "\n" not in str(raised.value) and not target.exists()
