"""The Spark engine: batch scoring, drift checks and reference profiles on Apache Spark.

When a scoring table outgrows one process, the work goes to Spark rather than to a
workbench-grown engine: ``mlflow.pyfunc.spark_udf`` scores a registered model on every
executor (loaded once per Python worker, ``env_manager="local"``: the executors run this
Python environment), and the drift statistics' counts are Spark aggregations.

- :func:`start_session` builds the session from the settings (``WORKBENCH_SPARK_MASTER``,
  ``WORKBENCH_SPARK_CONF`` or ``setup.cfg``'s ``[workbench.spark]`` section, ``--conf``):
  the driver binds to 127.0.0.1 and the web UI is off unless asked for; a missing pyspark
  or Java, and a master nobody answers at, are one line each, in seconds.
- :func:`predict_spark` scores a dataset into a folder of Parquet files with the local
  engine's columns (``prediction``, ``probability`` where the local engine has one,
  ``model_name``, ``scored_at``), whole or not at all.
- :class:`StageProgress` prints Spark's progress (stages, tasks) as lines.

pandas 3: PySpark 4.x warns that it does not fully support pandas 3. The conversions this
engine relies on are pinned by :data:`PANDAS_CONF` (see there) and proved by the tests,
which compare every row with the local engine's.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.config import Settings
from workbench.engines.local import FORMATS, resolve_dataset
from workbench.errors import MissingDependency, WorkbenchError
from workbench.predict import BatchPrediction, LoadedModel, scored_at_text
from workbench.progress import Progress
from workbench.registry import Instance, Registry

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession


#: Spark properties the engine sets so that pandas 3 and PySpark 4 convert correctly.
#:
#: - Arrow for every pandas conversion (``toPandas`` too), so the driver's sample and the
#:   UDF batches come through one conversion;
#: - ``convertToArrowArraySafely``: a value the declared Spark type cannot hold (a float
#:   prediction in a long column, an overflow) fails the task instead of being truncated.
PANDAS_CONF: dict[str, str] = {
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
    "spark.sql.execution.pandas.convertToArrowArraySafely": "true",
}
#: Seconds to wait for a standalone master to answer, and for its first executor.
CONNECT_TIMEOUT_S = 5.0
EXECUTOR_TIMEOUT_S = 30.0
#: Rows of the input scored on the driver first: the local engine's checks, with row numbers.
SAMPLE_ROWS = 100
_JAVA_MINIMUM = 17
_ADDED = ("prediction", "probability", "model_name", "scored_at")


# -- the session ---------------------------------------------------------------------------
def require_spark() -> str:
    """Check that pyspark and Java 17+ are there; the java command.

    Raises:
        MissingDependency: pyspark is not installed (names the ``[spark]`` extra).
        WorkbenchError: no Java, or one older than 17.
    """
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise MissingDependency("pyspark", "spark") from None
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").is_file() \
        else shutil.which("java")
    hint = ("install a JDK 17 or newer (e.g. apt-get install openjdk-17-jre-headless) or set "
            "JAVA_HOME; the Spark engine is pip install 'mlops-workbench[spark]'")
    if not java:
        raise WorkbenchError(f"the Spark engine needs Java and there is none on PATH or in "
                             f"JAVA_HOME; {hint}")
    try:
        shown = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        raise WorkbenchError(f"{java} does not run ({exc}); {hint}") from None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', shown.stderr + shown.stdout)
    major = int(found.group(1)) if found else 0
    if found and major == 1:  # "1.8.0": Java 8
        major = int(found.group(2) or 0)
    if major < _JAVA_MINIMUM:
        raise WorkbenchError(f"the Spark engine needs Java {_JAVA_MINIMUM} or newer; {java} is "
                             f"{found.group(0) if found else 'of an unknown version'}; {hint}")
    return java


def session_conf(settings: Settings, master: str | None = None,
                 conf: Mapping[str, str] | None = None) -> dict[str, str]:
    """The Spark properties a session gets: the engine's, then the settings', then ``conf``."""
    host = settings.spark_driver_host
    return {
        "spark.master": master or settings.spark_master,
        "spark.app.name": "workbench",
        "spark.driver.host": host,
        "spark.driver.bindAddress": host,
        "spark.ui.enabled": "true" if settings.spark_ui else "false",
        # The engine prints its own progress lines (StageProgress), not a redrawn bar.
        "spark.ui.showConsoleProgress": "false",
        # Executors' Python workers run this interpreter (the model's libraries are here).
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.sql.session.timeZone": "UTC",
        **PANDAS_CONF,
        **settings.spark_conf,
        **dict(conf or {}),
    }


def check_master(master: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail in seconds when a standalone master (``spark://host:port[,host:port]``) does not
    answer: Spark itself would retry for a minute and then wait for executors forever.

    Raises:
        WorkbenchError: no address of the master accepts a connection.
    """
    if not master.startswith("spark://"):
        return
    reasons = []
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return
        except (OSError, ValueError) as exc:
            reasons.append(f"{address}: {getattr(exc, 'strerror', None) or exc}")
    raise WorkbenchError(f"cannot reach the Spark master {master} ({'; '.join(reasons)}); "
                         "start it, or pass another --master (WORKBENCH_SPARK_MASTER)")


def start_session(settings: Settings, master: str | None = None,
                  conf: Mapping[str, str] | None = None,
                  progress: Progress | None = None, *,
                  wait_for_executors: bool = True) -> SparkSession:
    """A Spark session on ``master`` (default ``settings.spark_master``).

    The caller stops it (``session.stop()``). With a standalone master, the session is
    returned once an executor has registered (unless ``wait_for_executors`` is false: then
    the caller calls :func:`require_executors` before its first job, and meanwhile prepares
    what needs the driver only).

    Raises:
        MissingDependency, WorkbenchError: see :func:`require_spark` and
            :func:`check_master`; another session already runs in this process on another
            master; no executor registered within 30 s.
    """
    require_spark()
    properties = session_conf(settings, master, conf)
    master = properties["spark.master"]
    check_master(master)
    say = progress or (lambda _line: None)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and active.conf.get("spark.master") != master:
        raise WorkbenchError(f"a Spark session on {active.conf.get('spark.master')} runs in this "
                             f"process already; stop it before using {master}")
    say(f"starting Spark on {master}")
    if properties["spark.driver.bindAddress"] in ("127.0.0.1", "localhost"):
        # What the JVM resolves its own address to (block manager, shuffle): loopback too,
        # not the host name's address (Spark warns and takes an outside interface).
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # The Python workers run this interpreter (the model's libraries are here). PySpark takes
    # the workers' Python from PYSPARK_PYTHON when it builds each UDF, not from the session's
    # spark.pyspark.python: without it they run the first python3 on PATH, which outside an
    # activated virtualenv lacks pandas. A user's own PYSPARK_PYTHON is kept.
    os.environ.setdefault("PYSPARK_PYTHON", properties["spark.pyspark.python"])
    builder = SparkSession.builder
    for key, value in properties.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:
        raise WorkbenchError(f"Spark did not start on {master}: {spark_message(exc)}") from exc
    session.sparkContext.setLogLevel("ERROR")
    if wait_for_executors:
        require_executors(session)
    return session


def require_executors(session: SparkSession, timeout: float = EXECUTOR_TIMEOUT_S) -> None:
    """Wait until a standalone master has given the session an executor (at once for other
    masters).

    Raises:
        WorkbenchError: none registered within ``timeout`` seconds (the session is stopped).
    """
    master = session.conf.get("spark.master") or ""
    if not master.startswith("spark://"):
        return
    context = session.sparkContext
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # The driver counts itself among the block managers.
        if context._jsc.sc().getExecutorMemoryStatus().size() > 1:
            return
        time.sleep(0.25)
    session.stop()
    raise WorkbenchError(f"the Spark master {master} gave this application no executor in "
                         f"{timeout:.0f} s; check that a worker is ALIVE with free cores and "
                         "memory")


@contextlib.contextmanager
def session_for(settings: Settings, master: str | None, conf: Mapping[str, str] | None,
                spark: SparkSession | None, progress: Progress | None, *,
                wait_for_executors: bool = True) -> Iterator[SparkSession]:
    """``spark`` when given (left running), else a new session stopped at the end (see
    :func:`start_session` for ``wait_for_executors``)."""
    if spark is not None:
        yield spark
        return
    session = start_session(settings, master, conf, progress,
                            wait_for_executors=wait_for_executors)
    try:
        yield session
    finally:
        session.stop()


def spark_message(error: BaseException) -> str:
    """One line from a Spark failure: the workbench's or MLflow's reason when a Python
    worker raised one, else the first line of the error."""
    text = str(error)
    for marker in ("workbench.errors.", "WorkbenchError: ", "MlflowException: "):
        at = text.rfind(marker)
        if at >= 0:
            line = text[at:].splitlines()[0]
            line = re.sub(r"^workbench\.errors\.\w+: ", "", line)
            return line.removeprefix("WorkbenchError: ")[:300]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else type(error).__name__


class StageProgress:
    """Prints the running stages' tasks (done of all, running) while a block runs.

    A daemon thread polls Spark's status tracker; a stage's line is printed when it
    changed, at most every ``every_s`` seconds, and when the stage is first seen.
    """

    def __init__(self, session: SparkSession, progress: Progress | None,
                 every_s: float = 2.0) -> None:
        self._tracker = session.sparkContext.statusTracker()
        self._say, self._every = progress, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workbench-spark-progress",
                                        daemon=True)
        self.stages_seen: set[int] = set()

    def __enter__(self) -> StageProgress:
        if self._say is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        shown: dict[int, str] = {}
        last = 0.0
        while not self._stop.wait(0.25):
            try:
                lines = self._lines()
            except Exception:  # the session is stopping: nothing more to say
                return
            now = time.monotonic()
            for stage, line in lines.items():
                first = stage not in self.stages_seen
                if line != shown.get(stage) and (first or now - last >= self._every):
                    self.stages_seen.add(stage)
                    shown[stage] = line
                    last = now
                    assert self._say is not None
                    self._say(line)

    def _lines(self) -> dict[int, str]:
        lines = {}
        for stage in self._tracker.getActiveStageIds():
            info = self._tracker.getStageInfo(stage)
            if info is None:
                continue
            lines[stage] = (f"spark stage {stage}: {info.numCompletedTasks} of {info.numTasks} "
                            f"tasks done, {info.numActiveTasks} running")
        return lines


#: Rows per Arrow batch while scoring (Spark's default is 10,000, and the Parquet reader's
#: batches of 4,096 rows cap it lower still): a model pays a fixed cost per call (a pipeline's
#: checks, a thread pool's start), which larger batches spread (measured on the demo's
#: pipeline: 30% less time per row at 100,000 than at 4,096). 100,000 rows of a few dozen
#: columns are some tens of megabytes per task.
SCORE_BATCH_ROWS = 100_000
_BATCH_KEYS = ("spark.sql.execution.arrow.maxRecordsPerBatch",
               "spark.sql.parquet.columnarReaderBatchSize")


@contextlib.contextmanager
def arrow_batches_of(session: SparkSession, rows: int) -> Iterator[None]:
    """Up to ``rows`` rows per batch handed to Python in the jobs run within: Arrow's batch
    size and the Parquet reader's (whose batches a Python UDF's are cut from). Both are
    runtime SQL settings of the session, put back afterwards; a user's larger (or, for
    Arrow, unlimited) setting is kept."""
    changed: dict[str, str | None] = {}
    for key in _BATCH_KEYS:
        before = session.conf.get(key, None)
        if before is not None and (int(before) <= 0 or int(before) >= rows):
            continue
        changed[key] = before
        session.conf.set(key, str(rows))
    try:
        yield
    finally:
        for key, before in changed.items():
            if before is None:
                session.conf.unset(key)
            else:
                session.conf.set(key, before)


# -- reading -------------------------------------------------------------------------------
def read_dataset(session: SparkSession, source: Path | str) -> DataFrame:
    """A file, folder or glob as one Spark DataFrame (CSV with a header line, or Parquet).

    Local paths are resolved as the local engine resolves them (so a folder means its data
    files, whatever else lies there); a URI (``hdfs://``, ``s3a://``) goes to Spark as it is.

    Raises:
        WorkbenchError: see :func:`workbench.engines.local.resolve_dataset`; Spark cannot
            read the files.
    """
    text = str(source)
    if "://" in text and not text.startswith("file://"):
        kind = "csv" if text.rstrip("/").lower().endswith(".csv") else "parquet"
        paths = [text]
    else:
        dataset = resolve_dataset(source)
        kind, paths = dataset.kind, [str(p.resolve()) for p in dataset.files]
    try:
        if kind == "csv":
            return session.read.csv(paths, header=True, inferSchema=True)
        return session.read.parquet(*paths)
    except Exception as exc:
        raise WorkbenchError(f"Spark cannot read {text}: {spark_message(exc)}") from exc


# -- scoring -------------------------------------------------------------------------------
_NUMERIC_SIGNATURE = {"integer", "long", "float", "double"}


def check_schema(frame: DataFrame, columns: list[str] | None, types: Mapping[str, str],
                 label: str) -> None:
    """The local engine's column checks, on the Spark schema (types are per column here).

    Raises:
        WorkbenchError: a signature column is missing, or holds text or another kind of
            value where the signature has numbers.
    """
    from pyspark.sql import types as T

    present = {field.name: field.dataType for field in frame.schema.fields}
    missing = [c for c in columns or () if c not in present]
    if missing:
        raise WorkbenchError(f"input lacks column(s) {', '.join(missing)} that {label} was "
                             "trained on")
    for column, kind in types.items():
        spark_type = present.get(column)
        if kind in _NUMERIC_SIGNATURE and spark_type is not None \
                and not isinstance(spark_type, T.NumericType):
            raise WorkbenchError(f"column {column!r} holds {spark_type.simpleString()} values, "
                                 f"not numbers; {label} takes {kind} values there")


def first_rows(source: Path | str, rows: int = SAMPLE_ROWS) -> pd.DataFrame | None:
    """The first ``rows`` rows of a local Parquet dataset, read with pyarrow; None for CSV
    (Spark infers its types: its own sample has them) and URIs.

    Spark's ``limit(...).toPandas()`` gives the same frame (Arrow converts both) through a
    job of its own: some seconds of a short command's start.
    """
    if "://" in str(source):
        return None
    dataset = resolve_dataset(source)
    if dataset.kind != "parquet":
        return None
    import pyarrow.parquet as pq

    batch = next(pq.ParquetFile(dataset.files[0]).iter_batches(batch_size=rows), None)
    return batch.to_pandas() if batch is not None and batch.num_rows else None


def scoring_tasks(session: SparkSession, source: Path | str) -> int:
    """How many partitions to score ``source`` in: 0 to keep Spark's own reading, else the
    session's cores, when the data has fewer Parquet row groups than that.

    Spark splits Parquet by row groups (one row group is read by one task), so a file of
    one large row group would be scored by one Python worker while the other cores wait:
    scoring costs far more per row than moving the row, so such data is spread first.
    CSV (split by bytes) and URIs (not looked into) are left as Spark reads them.

    Raises:
        WorkbenchError: a Parquet footer cannot be read.
    """
    if "://" in str(source):
        return 0
    dataset = resolve_dataset(source)
    if dataset.kind != "parquet":
        return 0
    import pyarrow.parquet as pq

    cores = session.sparkContext.defaultParallelism
    groups = 0
    for path in dataset.files:
        groups += pq.ParquetFile(path).metadata.num_row_groups
        if groups >= cores:
            return 0
    return cores if cores > 1 else 0


def score_frame(session: SparkSession, frame: DataFrame, model: LoadedModel, model_dir: Path,
                workdir: Path, scored_at: dt.datetime, tasks: int = 0,
                sample: pd.DataFrame | None = None) -> DataFrame:
    """``frame`` with the local engine's added columns, scored by ``mlflow.pyfunc.spark_udf``.

    The model is wrapped in a :class:`~workbench.engines._scorer.SparkScorer` saved under
    ``workdir``, which spark_udf ships to the executors (as an archive on a cluster), with
    the loaded model inside or ``model_dir``'s files beside it.
    With ``tasks`` (see :func:`scoring_tasks`), the rows are spread over that many
    partitions before scoring (the output's row order is then not the input's). ``sample``:
    the first rows of ``frame``, when the caller has them (see :func:`first_rows`); else
    Spark reads them.

    Raises:
        WorkbenchError: the schema or the first rows do not fit the model (see
            :func:`check_schema` and :meth:`~workbench.predict.ModelScorer.outputs`).
    """
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    check_schema(frame, model.input_columns, model.input_types, model.label)
    if sample is None:
        sample = frame.limit(SAMPLE_ROWS).toPandas()
    predictions, probability = model.outputs(sample)
    fields = [("prediction", _spark_type(predictions))]
    if probability is not None:
        fields.append(("probability", "double"))
    result_type = ", ".join(f"{name}: {kind}" for name, kind in fields)

    from workbench.engines._scorer import save_scorer

    scorer_dir = workdir / "scorer"
    with _quiet("mlflow.pyfunc", "mlflow.models.flavor_backend_registry"):
        # MLflow's notes on cloudpickle and on env_manager="local" concern this wrapper,
        # which the workbench writes and reads itself: nothing the user can act on.
        save_scorer(scorer_dir, model, model_dir)
        udf = mlflow.pyfunc.spark_udf(session, str(scorer_dir),
                                      result_type=f"struct<{result_type}>", env_manager="local")
    if tasks > 1:
        # Hashing a row id spreads the rows evenly without the sort that a round-robin
        # repartition does first (to be deterministic on retry: the ids are, as the read is).
        frame = frame.repartition(tasks, F.monotonically_increasing_id())
    inputs = model.input_columns or list(frame.columns)
    scored = frame.withColumn("__workbench_scores", udf(F.struct(*[_col(c) for c in inputs])))
    added = {name: F.col(f"__workbench_scores.{name}") for name, _ in fields}
    added["model_name"] = F.lit(model.label)
    added["scored_at"] = F.lit(scored_at_text(scored_at))
    # As pandas assigns: a column the input has already is replaced where it stands.
    columns = [added.pop(c).alias(c) if c in added else _col(c) for c in frame.columns]
    return scored.select(*columns, *(value.alias(name) for name, value in added.items()))


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    import logging

    logs = [logging.getLogger(name) for name in loggers]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in zip(logs, levels):
            log.setLevel(level)


def _col(name: str) -> Any:
    from pyspark.sql import functions as F

    return F.col(f"`{name.replace('`', '``')}`")


def _spark_type(values: Any) -> str:
    """The Spark type of a prediction column like ``values`` (the driver's sample)."""
    import numpy as np

    dtype = np.asarray(values).dtype
    if dtype.kind == "b":
        return "boolean"
    if dtype.kind in "iu":
        return "long"
    if dtype.kind == "f":
        return "double"
    return "string"


def predict_spark(
    ref: str | Instance, input_path: Path | str, output_path: Path | str,
    settings: Settings | None = None, registry: Registry | None = None, *,
    master: str | None = None, conf: Mapping[str, str] | None = None,
    spark: SparkSession | None = None, progress: Progress | None = None,
) -> BatchPrediction:
    """Score a dataset on Spark into a folder of Parquet files.

    Args:
        ref: full name, ``instance@alias`` or ``models:/`` URI.
        input_path: a CSV/Parquet file, a folder of them, a glob, or a URI Spark reads.
        output_path: the folder of Parquet files to write (replaced when it exists).
        settings, registry: built from the environment when omitted.
        master, conf: the session's master and extra properties (see :func:`start_session`);
            ignored when ``spark`` is given.
        spark: a running session to use (left running).
        progress: called with a line per step and Spark's stages' progress.

    Returns:
        The output folder, the rows written, the instance and when it scored.

    Raises:
        InvalidModelName, ModelNotFound: ``ref`` is malformed or unknown.
        MissingDependency: pyspark is not installed.
        WorkbenchError: no Java, an unreachable master, unreadable input, a schema the
            model's signature refuses, or a failure on the executors (their reason); the
            output folder is left as it was.
    """
    settings = settings or Settings.from_env()
    registry = registry or Registry(settings)
    say = progress or (lambda _line: None)
    output = Path(output_path)
    if output.suffix.lower() in FORMATS:
        raise WorkbenchError(f"{output}: the Spark engine writes a folder of Parquet files; "
                             "name a folder (no .csv/.parquet extension)")
    instance = registry.resolve(ref)
    if "://" not in str(input_path):
        resolve_dataset(input_path)  # a missing input says so before Spark starts
    scored_at = dt.datetime.now(dt.timezone.utc)

    def load_model(workdir: Path) -> tuple[Path, LoadedModel, pd.DataFrame | None]:
        model_dir = download_model(instance, settings, workdir)
        return (model_dir, LoadedModel(instance, settings, source=str(model_dir)),
                first_rows(input_path))

    from concurrent.futures import ThreadPoolExecutor

    with tempfile.TemporaryDirectory(prefix="workbench-spark-") as tmp, \
            ThreadPoolExecutor(1, thread_name_prefix="workbench-model") as pool:
        workdir = Path(tmp)
        # The model is downloaded and loaded while the JVM starts (seconds each); the session
        # itself starts on this thread, where PySpark can take over Ctrl-C to cancel the jobs.
        loading = pool.submit(load_model, workdir)
        # A standalone master's executor starts meanwhile too: the model's loading and the
        # input's reading on the driver do not wait for it; the scoring plan does.
        with session_for(settings, master, conf, spark, say,
                         wait_for_executors=False) as session:
            try:
                model_dir, model, sample = loading.result()
                frame = read_dataset(session, input_path)
                # (Before the tasks are counted: they follow the executors' cores.)
                require_executors(session)
                scored = score_frame(session, frame, model, model_dir, workdir, scored_at,
                                     scoring_tasks(session, input_path), sample)
                say(f"scoring with {instance.label} on {session.conf.get('spark.master')}")
                with StageProgress(session, say), arrow_batches_of(session, SCORE_BATCH_ROWS):
                    rows = _write_folder(scored, output)
            except WorkbenchError:
                raise
            except Exception as exc:  # Py4J and Spark's own errors: their reason, in one line
                raise WorkbenchError(f"scoring on Spark failed: {spark_message(exc)}") from exc
    say(f"{rows:,} rows written to {output}")
    return BatchPrediction(output, rows, instance, scored_at)


def _rows_written(folder: Path) -> int:
    """The rows in a folder of Parquet files Spark wrote, from their footers (counting them
    with Spark would be a job of its own)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(path).metadata.num_rows for path in folder.glob("*.parquet"))


def download_model(instance: Instance, settings: Settings, workdir: Path) -> Path:
    """The instance's model files, downloaded under ``workdir`` (spark_udf ships them on)."""
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    return Path(mlflow.artifacts.download_artifacts(
        artifact_uri=instance.uri, dst_path=str(workdir / "download"),
        tracking_uri=settings.tracking_uri))


def _write_folder(scored: DataFrame, output: Path) -> int:
    """Write ``scored`` as Parquet into ``output``, whole or not at all; the rows written.

    Raises:
        WorkbenchError: the job failed (the executors' reason).
    """
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        scored.write.parquet(str(staging))
        rows = _rows_written(staging)
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise WorkbenchError(f"scoring on Spark failed: {spark_message(exc)}") from exc
    old = output.with_name(f".{output.name}.{os.getpid()}.old")
    if output.exists():
        output.rename(old)
    os.replace(staging, output)
    shutil.rmtree(old, ignore_errors=True)
    return rows


__all__ = [
    "PANDAS_CONF",
    "SCORE_BATCH_ROWS",
    "StageProgress",
    "arrow_batches_of",
    "check_master",
    "download_model",
    "first_rows",
    "predict_spark",
    "read_dataset",
    "require_executors",
    "require_spark",
    "score_frame",
    "scoring_tasks",
    "session_conf",
    "spark_message",
    "start_session",
]
