"""The streaming local engine: datasets read batch by batch, outputs written as they go.

A dataset is a CSV or Parquet file, a folder of them (read recursively, in name order;
hidden files and Spark's ``_SUCCESS`` markers are skipped) or a glob (``data/2024-*.parquet``).
Parquet is read by row groups (``pyarrow.parquet.ParquetFile.iter_batches``), CSV in chunks
of rows with pandas' own parser, so a bad line is reported as it is today; at no time is
more than one batch in memory, whatever the dataset's size.

An output is written by :class:`TableWriter` into a temporary file beside the target and
renamed over it at the end: it appears whole or not at all, also when a later batch fails.

Nothing here knows about models: :func:`workbench.predict.predict_file` scores the batches.
"""
from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
DEFAULT_BATCH_ROWS = 500_000
_GLOB_CHARACTERS = set("*?[")
_CSV_BLOCK = 1 << 24

#: Called with the rows done and the rows in total (None when not known in advance).
RowProgress = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class Dataset:
    """The files of one dataset, all of one format.

    Attributes:
        source: what was asked for (a file, a folder or a glob), for messages.
        files: the data files, in the order they are read.
        kind: ``csv`` or ``parquet``.
    """

    source: str
    files: tuple[Path, ...]
    kind: str

    def total_rows(self) -> int | None:
        """Rows in the whole dataset: exact for Parquet (from the files' footers), the number
        of lines after each header for CSV (a quoted value spanning lines counts twice).

        Raises:
            WorkbenchError: a Parquet file whose footer cannot be read.
        """
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            total = 0
            for path in self.files:
                with reading(path, self.kind):
                    total += pq.ParquetFile(path).metadata.num_rows
            return total
        return sum(max(0, _count_lines(path) - 1) for path in self.files)


def resolve_dataset(source: Path | str) -> Dataset:
    """The files ``source`` names: a file, a folder (recursively) or a glob.

    Raises:
        WorkbenchError: nothing there, no CSV/Parquet files in the folder or glob, an
            unsupported extension, or CSV and Parquet mixed in one dataset.
    """
    text = str(source)
    path = Path(source)
    if _GLOB_CHARACTERS & set(text) and not path.exists():
        files = [Path(p) for p in sorted(glob.glob(text, recursive=True)) if Path(p).is_file()]
        where = f"the pattern {text}"
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file()
                       and not any(part.startswith((".", "_"))
                                   for part in p.relative_to(path).parts))
        where = f"the folder {text}"
    elif path.is_file():
        kind = FORMATS.get(path.suffix.lower())
        if kind is None:
            raise WorkbenchError(f"{path}: unsupported format; use .csv or .parquet")
        return Dataset(text, (path,), kind)
    else:
        raise WorkbenchError(f"input file {path} does not exist")
    data = [p for p in files if p.suffix.lower() in FORMATS]
    if not data:
        raise WorkbenchError(f"{where} holds no data files (.csv, .parquet); point --input at "
                             "a file, a folder of them or a glob")
    kinds = {FORMATS[p.suffix.lower()] for p in data}
    if len(kinds) > 1:
        raise WorkbenchError(f"{where} mixes CSV and Parquet files; a dataset is one format")
    return Dataset(text, tuple(data), kinds.pop())


@contextlib.contextmanager
def reading(path: Path, kind: str) -> Iterator[None]:
    """Turn the parser's failures on ``path`` into one :class:`WorkbenchError` line.

    Raises:
        WorkbenchError: an empty file, or one that is not what its extension says (the
            parser's reason, with its line number, is named).
    """
    import pandas as pd

    try:
        yield
    except pd.errors.EmptyDataError:
        raise WorkbenchError(f"{path} is empty; it needs a header line and rows") from None
    except (ValueError, OSError, UnicodeDecodeError) as error:
        if isinstance(error, WorkbenchError):
            raise
        # pandas' ParserError is a ValueError; pyarrow's ArrowInvalid too; a binary file
        # given as CSV is a UnicodeDecodeError.
        text = str(error).strip().splitlines()
        raise WorkbenchError(
            f"{path} is not a readable {'CSV' if kind == 'csv' else 'Parquet'} file "
            f"({text[0][:200] if text else type(error).__name__}); fix the file") from None


def iter_frames(dataset: Dataset, batch_rows: int = DEFAULT_BATCH_ROWS,
                columns: list[str] | None = None) -> Iterator[tuple[Path, pd.DataFrame]]:
    """The dataset as frames of at most ``batch_rows`` rows, with the file each comes from.

    A frame's index counts the rows of its file from 0, so a message can name the row.

    Args:
        dataset: what to read.
        batch_rows: most rows per frame.
        columns: Parquet only: read just these columns (all when None).

    Raises:
        WorkbenchError: a file cannot be read (see :func:`reading`), or ``batch_rows`` is
            not positive.
    """
    if batch_rows < 1:
        raise WorkbenchError(f"batch size must be at least 1 row, got {batch_rows}")
    for path in dataset.files:
        if dataset.kind == "csv":
            yield from _csv_frames(path, batch_rows)
        else:
            yield from _parquet_frames(path, batch_rows, columns)


def _csv_frames(path: Path, batch_rows: int) -> Iterator[tuple[Path, pd.DataFrame]]:
    import pandas as pd

    with reading(path, "csv"):
        # The chunks' index continues from one chunk to the next: row numbers stay the file's.
        with pd.read_csv(path, chunksize=batch_rows) as chunks:
            for frame in chunks:
                yield path, frame


def _parquet_frames(path: Path, batch_rows: int,
                    columns: list[str] | None) -> Iterator[tuple[Path, pd.DataFrame]]:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = 0
    with reading(path, "parquet"):
        source = pq.ParquetFile(path)
        for batch in source.iter_batches(batch_size=batch_rows, columns=columns):
            # Through a table so the file's pandas metadata (dtypes) applies as read_parquet's.
            frame = pa.Table.from_batches([batch]).to_pandas()
            frame.index = pd.RangeIndex(done, done + len(frame))
            done += len(frame)
            yield path, frame


class TableWriter:
    """Writes frames to one CSV or Parquet file (by extension), whole or not at all.

    Use it as a context manager: the frames go into a temporary file beside ``path`` (same
    file system, so the rename is atomic), renamed over ``path`` when the block ends without
    an error and deleted when it does not.

    Raises:
        WorkbenchError: an unsupported extension (at construction), or a frame whose
            columns do not match the first one's (at :meth:`write`).
    """

    def __init__(self, path: Path) -> None:
        kind = FORMATS.get(path.suffix.lower())
        if kind is None:
            raise WorkbenchError(f"{path}: unsupported output format; use .csv or .parquet")
        self.path, self.kind = path, kind
        self.rows = 0
        self._temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self._handle: Any = None
        self._schema: pa.Schema | None = None
        self._created: list[Path] = []

    def __enter__(self) -> TableWriter:
        return self

    def _make_folders(self) -> None:
        # Only once there is something to write: a failed run leaves no folder behind.
        missing = [f for f in (self.path.parent, *self.path.parent.parents) if not f.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._created = missing

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame``'s rows."""
        if self._handle is None:
            self._make_folders()
        if self.kind == "csv":
            if self._handle is None:
                self._handle = open(self._temporary, "w", newline="", encoding="utf-8")
            frame.to_csv(self._handle, index=False, header=self.rows == 0)
        else:
            self._write_parquet(frame)
        self.rows += len(frame)

    def _write_parquet(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._schema is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self._schema = table.schema
            self._handle = pq.ParquetWriter(self._temporary, self._schema)
        else:
            table = _conform(frame, self._schema, self.rows)
        self._handle.write_table(table)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        done = False
        try:
            if self._handle is not None:
                self._handle.close()
            if kind is None:
                if self._handle is None:  # no frame at all: an empty table, not no file
                    raise WorkbenchError(f"nothing to write to {self.path}")
                os.replace(self._temporary, self.path)
                done = True
        finally:
            self._temporary.unlink(missing_ok=True)
            for folder in [] if done else self._created:  # deepest first
                with contextlib.suppress(OSError):
                    folder.rmdir()


def _conform(frame: pd.DataFrame, schema: pa.Schema, row: int) -> pa.Table:
    """``frame`` as a table of ``schema``: a later CSV chunk may infer other types (a gap in
    whole numbers reads as floats, all-number text as integers), which fit the first
    chunk's when their values do.

    Raises:
        WorkbenchError: a column whose values do not fit the type the first rows had.
    """
    import pyarrow as pa

    try:
        return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, KeyError):
        pass
    arrays = []
    for field in schema:
        column = frame[field.name] if field.name in frame.columns else None
        try:
            if column is None:
                raise KeyError(field.name)
            if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
                column = column.astype("string")
            arrays.append(pa.Array.from_pandas(column, type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, KeyError):
            later = column.dtype if column is not None else "missing"
            raise WorkbenchError(
                f"column {field.name!r} changes type within the input (the first rows read "
                f"as {field.type}, the rows from {row + 1} on as {later}); give the column "
                "one type in every file and row") from None
    return pa.Table.from_arrays(arrays, schema=schema)


def _count_lines(path: Path) -> int:
    count = 0
    last = b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(_CSV_BLOCK):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


__all__ = ["DEFAULT_BATCH_ROWS", "FORMATS", "Dataset", "TableWriter", "iter_frames", "reading",
           "resolve_dataset"]
