"""Two models on the same requests: agreement, prediction shift and latency.

``compare_models`` reads what two registered instances logged in a window of the prediction
store (the champion as ``primary``, a challenger served with ``--shadow`` as ``shadow``, under
the same request ids) and pairs their predicted rows by request id and row position within
the request. ``replay_model`` scores the inputs one model logged through another instance
offline (loaded like ``workbench predict`` loads it, never deployed, nothing written to the
store) and compares the two the same way.

``compare_predictions`` is the pure part: two frames in, a :class:`Comparison` out.

- Agreement: exact equality for labels, strings, integers and booleans; floats agree within a
  relative tolerance (``rtol``); vectors (probabilities) agree when every element does; two
  missing values agree.
- Shift between the two prediction distributions, over the paired rows (the same inputs on
  both sides): numeric predictions get the two-sample Kolmogorov-Smirnov statistic and its
  p-value; labels get the chi-square test of homogeneity and the Jensen-Shannon distance of
  the label frequencies (both from :mod:`workbench.monitoring.stats`). Vectors get none.
- Latency: p50 and p99 of ``latency_ms`` over each side's records (one value per request,
  however many rows it held). A shadow record's latency is the shadow's own scoring time; a
  replayed side's is the offline scoring time per row.

Every reason a comparison cannot be made is a :class:`~workbench.errors.MonitoringError`
(exit status 2 in the CLI); no paired rows is :class:`~workbench.errors.NoCurrentData`.
"""
from __future__ import annotations

import datetime as dt
import math
import numbers
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.config import Settings
from workbench.errors import MonitoringError, NoCurrentData, WorkbenchError
from workbench.monitoring.service import parse_time, resolve_model
from workbench.monitoring.stats import chi_square, js_distance, ks_pvalue
from workbench.progress import Progress
from workbench.registry import Instance, Registry

if TYPE_CHECKING:
    import pandas as pd


DEFAULT_RTOL = 1e-6
# Floats this close to each other agree even where a relative tolerance cannot (around 0).
ABS_TOL = 1e-12
REPLAY_CHUNK_ROWS = 5_000
COMPARE_SINCE = "1d"
REPLAY_SINCE = "7d"
NUMERIC, CATEGORICAL, VECTOR = "numeric", "categorical", "vector"
REPLAYED = "replayed"
LOGGED_LATENCY = "logged latency per request"
SHADOW_LATENCY = "shadow records: the shadow's own scoring time"
REPLAY_LATENCY = "offline scoring time per row (batch replay, not serving latency)"
# What read_predictions adds to a model's inputs.
_STORE_COLUMNS = ("request_id", "created_at", "model_name", "role", "prediction", "latency_ms")
_SHOWN_CATEGORIES = 20


@dataclass(frozen=True)
class Side:
    """One model's part of a comparison.

    Attributes:
        model: the instance's full name (as logged).
        rows: predicted rows read (or scored, for a replay).
        unpaired: of those, rows with no partner on the other side.
        requests: records (requests) the rows came from.
        roles: rows per role (``primary``, ``shadow``; ``replayed`` for a replay).
        latency_p50_ms, latency_p99_ms: over the side's records; None when none has one.
        latency: what the latency measures.
    """

    model: str
    rows: int
    unpaired: int
    requests: int
    roles: dict[str, int]
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    latency: str

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "rows": self.rows, "unpaired": self.unpaired,
                "requests": self.requests, "roles": dict(self.roles),
                "latency_p50_ms": self.latency_p50_ms, "latency_p99_ms": self.latency_p99_ms,
                "latency": self.latency}


@dataclass(frozen=True)
class Shift:
    """How far apart the two prediction distributions are, over the paired rows.

    Attributes:
        kind: ``numeric`` or ``categorical``.
        test: ``ks`` (numeric) or ``chi2`` (categorical).
        statistic, p_value: the test's.
        js_distance: Jensen-Shannon distance of the label frequencies (categorical only).
        mean_a, mean_b: the sides' means (numeric only).
        counts: (label, count A, count B) for the most frequent labels (categorical only).
    """

    kind: str
    test: str
    statistic: float
    p_value: float
    js_distance: float | None = None
    mean_a: float | None = None
    mean_b: float | None = None
    counts: tuple[tuple[str, int, int], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "test": self.test, "statistic": self.statistic,
                "p_value": self.p_value, "js_distance": self.js_distance,
                "mean_a": self.mean_a, "mean_b": self.mean_b,
                "counts": [{"label": label, "a": a, "b": b} for label, a, b in self.counts]}


@dataclass(frozen=True)
class Comparison:
    """Two models' predictions on the same requests.

    Attributes:
        a, b: the two sides (for a replay, ``a`` is what was logged and ``b`` the replay).
        paired: rows present on both sides (same request id and row position).
        agreeing: paired rows whose predictions agree.
        kind: ``numeric``, ``categorical`` or ``vector`` (what the predictions are); None when
            nothing is paired.
        shift: the distribution shift; None for vectors or without paired values.
        rtol: the relative tolerance floats were compared with.
        mode: ``compare`` (both logged) or ``replay``.
        source, since, until: where the rows came from and the window (ISO 8601, UTC).
        notes: what a reader should know (what the latencies measure, ...).
    """

    a: Side
    b: Side
    paired: int
    agreeing: int
    kind: str | None
    shift: Shift | None
    rtol: float = DEFAULT_RTOL
    mode: str = "compare"
    source: str = ""
    since: str | None = None
    until: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def agreement(self) -> float | None:
        """Share of paired rows that agree; None when nothing is paired."""
        return self.agreeing / self.paired if self.paired else None

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "a": self.a.as_dict(), "b": self.b.as_dict(),
                "paired": self.paired, "agreeing": self.agreeing, "agreement": self.agreement,
                "kind": self.kind, "shift": self.shift.as_dict() if self.shift else None,
                "rtol": self.rtol, "source": self.source, "since": self.since,
                "until": self.until, "notes": list(self.notes)}


# -- the maths -------------------------------------------------------------------------------
def compare_predictions(a: pd.DataFrame, b: pd.DataFrame, *, a_name: str = "A",
                        b_name: str = "B", rtol: float = DEFAULT_RTOL,
                        a_latency: str = LOGGED_LATENCY,
                        b_latency: str = LOGGED_LATENCY) -> Comparison:
    """Pair two sides' predicted rows and compare them.

    Rows pair by (request id, position of the row within its request's rows on that side, in
    frame order); a request id logged twice on one side continues the positions.

    Args:
        a, b: frames with ``request_id`` and ``prediction`` columns (one row per predicted
            row, as ``read_predictions`` gives them), and optionally ``latency_ms`` and
            ``role``.
        a_name, b_name: the sides' model names.
        rtol: relative tolerance under which two floats agree.
        a_latency, b_latency: what each side's latency measures.

    Returns:
        The comparison (``paired`` may be 0).
    """
    import pandas as pd

    keyed_a, keyed_b = _keyed(pd, a), _keyed(pd, b)
    merged = keyed_a.merge(keyed_b, on=["request_id", "position"], how="inner",
                           suffixes=("_a", "_b"))
    pairs_a = merged["prediction_a"].tolist()
    pairs_b = merged["prediction_b"].tolist()
    agreeing = sum(1 for x, y in zip(pairs_a, pairs_b) if same(x, y, rtol))
    paired = len(merged)
    kind = prediction_kind(pairs_a + pairs_b) if paired else None
    shift = distribution_shift(pairs_a, pairs_b, kind) if kind in (NUMERIC, CATEGORICAL) else None
    return Comparison(
        a=_side(a, a_name, len(a) - paired, a_latency),
        b=_side(b, b_name, len(b) - paired, b_latency),
        paired=paired, agreeing=agreeing, kind=kind, shift=shift, rtol=rtol)


def same(x: Any, y: Any, rtol: float = DEFAULT_RTOL) -> bool:
    """Whether two predictions agree: floats within ``rtol``, vectors element by element,
    everything else exactly; two missing values (None or NaN) agree."""
    if _missing(x) or _missing(y):
        return _missing(x) and _missing(y)
    if isinstance(x, (list, tuple)) or isinstance(y, (list, tuple)):
        if not (isinstance(x, (list, tuple)) and isinstance(y, (list, tuple))) or len(x) != len(y):
            return False
        return all(same(u, v, rtol) for u, v in zip(x, y))
    if _is_number(x) and _is_number(y):
        if isinstance(x, numbers.Integral) and isinstance(y, numbers.Integral):
            return int(x) == int(y)
        return math.isclose(float(x), float(y), rel_tol=rtol, abs_tol=ABS_TOL)
    return bool(x == y)


def prediction_kind(values: list[Any]) -> str:
    """``vector`` when any prediction is a list, ``numeric`` when all are numbers and one is
    a float, else ``categorical`` (labels: strings, integers, booleans)."""
    present = [v for v in values if not _missing(v)]
    if any(isinstance(v, (list, tuple)) for v in present):
        return VECTOR
    if present and all(_is_number(v) for v in present) and any(
            not isinstance(v, numbers.Integral) for v in present):
        return NUMERIC
    return CATEGORICAL


def distribution_shift(a: list[Any], b: list[Any], kind: str | None) -> Shift | None:
    """KS for numeric predictions, chi-square and JS distance for labels; None when a side
    has no value to compare."""
    if kind == NUMERIC:
        xa = _finite(a)
        xb = _finite(b)
        if not len(xa) or not len(xb):
            return None
        statistic = ks_two_sample(xa, xb)
        return Shift(NUMERIC, "ks", statistic, ks_pvalue(statistic, len(xa), len(xb)),
                     mean_a=float(np.mean(xa)), mean_b=float(np.mean(xb)))
    if kind != CATEGORICAL:
        return None
    labels_a = [_label(v) for v in a if not _missing(v)]
    labels_b = [_label(v) for v in b if not _missing(v)]
    if not labels_a or not labels_b:
        return None
    count_a: dict[str, int] = {}
    count_b: dict[str, int] = {}
    for label in labels_a:
        count_a[label] = count_a.get(label, 0) + 1
    for label in labels_b:
        count_b[label] = count_b.get(label, 0) + 1
    categories = sorted(set(count_a) | set(count_b),
                        key=lambda c: (-(count_a.get(c, 0) + count_b.get(c, 0)), c))
    va = [count_a.get(c, 0) for c in categories]
    vb = [count_b.get(c, 0) for c in categories]
    statistic, p_value = chi_square(va, vb)
    return Shift(CATEGORICAL, "chi2", statistic, p_value, js_distance=js_distance(va, vb),
                 counts=tuple((c, count_a.get(c, 0), count_b.get(c, 0))
                              for c in categories[:_SHOWN_CATEGORIES]))


def ks_two_sample(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic (largest gap between the two ECDFs;
    ``scipy.stats.ks_2samp``'s statistic)."""
    sa_, sb_ = np.sort(a), np.sort(b)
    points = np.concatenate([sa_, sb_])
    cdf_a = np.searchsorted(sa_, points, side="right") / len(sa_)
    cdf_b = np.searchsorted(sb_, points, side="right") / len(sb_)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def _keyed(pd: Any, frame: pd.DataFrame) -> pd.DataFrame:
    keyed = pd.DataFrame({"request_id": frame["request_id"].astype(str).to_numpy(),
                          "prediction": frame["prediction"].to_numpy(dtype=object)})
    keyed["position"] = keyed.groupby("request_id", sort=False).cumcount()
    return keyed


def _side(frame: pd.DataFrame, name: str, unpaired: int, latency: str) -> Side:
    import pandas as pd

    positions = frame.groupby(frame["request_id"].astype(str), sort=False).cumcount()
    first_rows = frame[positions.to_numpy() == 0]
    p50 = p99 = None
    if "latency_ms" in frame:
        values = pd.to_numeric(first_rows["latency_ms"], errors="coerce").dropna().to_numpy()
        if len(values):
            p50, p99 = (float(v) for v in np.percentile(values, [50, 99]))
    roles = ({str(k): int(v) for k, v in frame["role"].value_counts(sort=False).items()}
             if "role" in frame else {})
    return Side(model=name, rows=len(frame), unpaired=unpaired, requests=len(first_rows),
                roles=roles, latency_p50_ms=p50, latency_p99_ms=p99, latency=latency)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _finite(values: list[Any]) -> np.ndarray:
    array = np.asarray([float(v) for v in values if not _missing(v) and _is_number(v)],
                       dtype="float64")
    return array[np.isfinite(array)]


def _label(value: Any) -> str:
    return str(value.item() if hasattr(value, "item") else value)


# -- the I/O ---------------------------------------------------------------------------------
def compare_models(
    a: str | Instance,
    b: str | Instance,
    settings: Settings,
    *,
    since: str | dt.datetime | None = COMPARE_SINCE,
    until: str | dt.datetime | None = None,
    url: str | None = None,
    rtol: float = DEFAULT_RTOL,
    registry: Registry | None = None,
    progress: Progress | None = None,
) -> Comparison:
    """Compare what two registered instances logged for the same requests.

    Args:
        a, b: full names, ``instance@alias`` or ``models:/`` URIs (e.g. ``churn@champion``
            and ``churn@challenger``).
        settings: tracking server and prediction store.
        since, until: the window (``until`` exclusive), as ``monitor drift`` reads them
            (``1d``, ``2024-04-30``, ISO 8601); None for no bound.
        url: the prediction store (default: ``settings.prediction_store_url``).
        rtol: relative tolerance under which two float predictions agree.
        registry: built from ``settings`` when omitted.
        progress: called with a line per step.

    Returns:
        The comparison, with at least one paired row.

    Raises:
        UnknownMonitoredModel: a reference names no model.
        NoCurrentData: no row of one model pairs with a row of the other in the window.
        MonitoringError: any other reason (both references name one instance, a bad window,
            an unreadable store, an unreachable tracking server).
    """
    say = progress or (lambda _line: None)
    start, end = _window(since, until)
    with _errors(settings):
        registry = _registry(settings, registry)
        first, second = resolve_model(registry, a), resolve_model(registry, b)
        name_a, name_b = _logged_name(first), _logged_name(second)
        if name_a == name_b:
            raise MonitoringError(
                f"both references name {first.label}; compare two instances, e.g. "
                f"{first.registered_model}@champion {first.registered_model}@challenger")
        store = url or settings.prediction_store_url
        shown, window = _shown(store), _describe(start, end)
        say(f"reading predictions of {name_a} and {name_b} from {shown}, {window}")
        logged_a = _read(store, name_a, start, end, None, shown)
        logged_b = _read(store, name_b, start, end, None, shown)
        say(f"{len(logged_a)} rows of {name_a}, {len(logged_b)} rows of {name_b}")
        comparison = compare_predictions(
            logged_a, logged_b, a_name=name_a, b_name=name_b, rtol=rtol,
            a_latency=_latency_note(logged_a), b_latency=_latency_note(logged_b))
        if not comparison.paired:
            raise NoCurrentData(
                f"nothing to compare from {window} in {shown}: {len(logged_a)} rows of "
                f"{name_a} and {len(logged_b)} of {name_b}, none for the same request; serve "
                f"one with the other as shadow (workbench serve {first.label} --shadow "
                f"{second.label}) or score logged inputs offline (workbench monitor replay "
                f"{second.label} --against {first.label})")
        return _finished(comparison, "compare", shown, window, start, end)


def replay_model(
    ref: str | Instance,
    settings: Settings,
    *,
    against: str | Instance | None = None,
    since: str | dt.datetime | None = REPLAY_SINCE,
    until: str | dt.datetime | None = None,
    url: str | None = None,
    rtol: float = DEFAULT_RTOL,
    chunk_rows: int = REPLAY_CHUNK_ROWS,
    registry: Registry | None = None,
    progress: Progress | None = None,
) -> Comparison:
    """Score the inputs another model logged through ``ref`` offline, and compare.

    Nothing is deployed and nothing is written to the prediction store: the logged rows are
    read, ``ref`` is loaded with MLflow's pyfunc loader (as ``workbench predict`` loads it)
    and scores them in chunks.

    Args:
        ref: the instance to replay through (any registered instance).
        settings: tracking server and prediction store.
        against: whose logged inputs (its ``primary`` records) to replay and compare with;
            default: the ``champion`` alias of ``ref``'s registered model.
        since, until: the window of logged predictions, as in ``compare_models``.
        url: the prediction store (default: ``settings.prediction_store_url``).
        rtol: relative tolerance under which two float predictions agree.
        chunk_rows: rows scored per call (a progress line after each).
        registry: built from ``settings`` when omitted.
        progress: called with a line per step.

    Returns:
        The comparison: side ``a`` is what ``against`` logged, ``b`` the replay through ``ref``
        (its latency is the offline scoring time per row).

    Raises:
        UnknownMonitoredModel: ``ref`` or ``against`` names no model.
        NoCurrentData: ``against`` logged no primary predictions in the window.
        MonitoringError: any other reason (``ref`` cannot be loaded or cannot score the
            logged inputs, a bad window, an unreadable store, an unreachable tracking server).
    """
    say = progress or (lambda _line: None)
    if chunk_rows < 1:
        raise MonitoringError(f"chunk_rows must be at least 1, not {chunk_rows}")
    start, end = _window(since, until)
    with _errors(settings):
        registry = _registry(settings, registry)
        target = resolve_model(registry, ref)
        served = resolve_model(registry, against if against is not None
                               else f"{target.registered_model}@champion")
        name_logged, name_replayed = _logged_name(served), _logged_name(target)
        store = url or settings.prediction_store_url
        shown, window = _shown(store), _describe(start, end)
        say(f"reading the inputs {name_logged} logged (primary) from {shown}, {window}")
        logged = _read(store, name_logged, start, end, "primary", shown)
        if logged.empty:
            raise NoCurrentData(
                f"no primary predictions of {name_logged} logged from {window} in {shown}; "
                "widen the window (--since/--until) or name the model that served them "
                "(--against)")
        replayed = _replay(logged, target, settings, chunk_rows, say)
        comparison = compare_predictions(
            logged, replayed, a_name=name_logged, b_name=name_replayed, rtol=rtol,
            a_latency=LOGGED_LATENCY, b_latency=REPLAY_LATENCY)
        return _finished(comparison, "replay", shown, window, start, end)


def _replay(logged: pd.DataFrame, target: Instance, settings: Settings, chunk_rows: int,
            say: Progress) -> pd.DataFrame:
    """``target``'s predictions on the logged inputs, with the scoring time per row."""
    import pandas as pd

    from workbench.predict import LoadedModel

    renames = {f"input_{column}": column for column in _STORE_COLUMNS
               if f"input_{column}" in logged}
    inputs = logged.drop(columns=[c for c in _STORE_COLUMNS if c in logged]).rename(
        columns=renames)
    total = len(inputs)
    requests = logged["request_id"].nunique()
    say(f"loading {target.label}")
    try:
        model = LoadedModel(target, settings)
    except WorkbenchError:
        raise
    except Exception as exc:
        raise MonitoringError(f"cannot load {target.label} ({exc.__class__.__name__}: "
                              f"{_first_line(exc)})") from exc
    say(f"replaying {total} rows ({requests} requests) through {target.label}")
    predictions: list[Any] = []
    latencies: list[float] = []
    for begin in range(0, total, chunk_rows):
        # A fresh index: a model returning a Series must not be aligned on the frame's.
        chunk = inputs.iloc[begin:begin + chunk_rows].reset_index(drop=True)
        started = time.perf_counter()
        try:
            scored = model.predict(chunk)["prediction"]
        except WorkbenchError as exc:
            raise MonitoringError(f"replaying the logged inputs: {exc}") from exc
        per_row = (time.perf_counter() - started) * 1000 / max(len(chunk), 1)
        predictions.extend(_plain(value) for value in scored.tolist())
        latencies.extend([per_row] * len(chunk))
        if total > chunk_rows:
            say(f"scored {min(begin + chunk_rows, total)}/{total} rows")
    return pd.DataFrame({
        "request_id": logged["request_id"].to_numpy(),
        "prediction": pd.Series(predictions, dtype="object"),
        "latency_ms": pd.Series(latencies, dtype="float64"),
        "role": REPLAYED,
    })


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value


def _finished(comparison: Comparison, mode: str, shown: str, window: str,
              start: dt.datetime | None, end: dt.datetime | None) -> Comparison:
    import dataclasses

    notes = [f"latency of {side.model}: {side.latency}" for side in (comparison.a, comparison.b)]
    if comparison.kind == VECTOR:
        notes.append("the predictions are vectors: agreement is element by element, and no "
                     "distribution shift is computed")
    return dataclasses.replace(
        comparison, mode=mode, source=f"prediction store {shown}, {window}",
        since=start.isoformat() if start else None, until=end.isoformat() if end else None,
        notes=tuple(notes))


def _latency_note(frame: pd.DataFrame) -> str:
    roles = set(frame["role"].unique()) if "role" in frame and len(frame) else set()
    return SHADOW_LATENCY if "shadow" in roles else LOGGED_LATENCY


def _read(url: str, name: str, start: dt.datetime | None, end: dt.datetime | None,
          role: str | None, shown: str) -> pd.DataFrame:
    from sqlalchemy.exc import SQLAlchemyError

    from workbench.store.reader import read_predictions

    try:
        return read_predictions(url, model_name=name, since=start, until=end, role=role)
    except SQLAlchemyError as exc:
        raise MonitoringError(f"cannot read the prediction store {shown}: "
                              f"{exc.__class__.__name__}: {_first_line(exc)}") from exc


def _window(since: str | dt.datetime | None,
            until: str | dt.datetime | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    start = parse_time(since) if since else None
    end = parse_time(until, end_of_day=True) if until else None
    if start and end and start >= end:
        raise MonitoringError(f"the window is empty: since {start.isoformat()} is not before "
                              f"until {end.isoformat()}")
    return start, end


def _registry(settings: Settings, registry: Registry | None) -> Registry:
    from workbench.tracking import require_server

    require_server(settings)
    return registry or Registry(settings)


@contextmanager
def _errors(settings: Settings) -> Iterator[None]:
    """Every failure as a MonitoringError (exit status 2), as ``monitor drift`` does."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MonitoringError:
        raise
    except WorkbenchError as exc:  # e.g. the tracking server is down
        raise MonitoringError(str(exc)) from exc
    except MlflowException as exc:
        raise MonitoringError(f"the tracking server at {settings.tracking_uri} refused a call "
                              f"({_first_line(exc)})") from exc


def _logged_name(instance: Instance) -> str:
    # The serving side logs predictions under this name (full name, else the source URI).
    return instance.full_name or instance.source


def _shown(url: str) -> str:
    from workbench.store.engine import redact

    try:
        return redact(url)
    except Exception:
        return "the prediction store"


def _describe(start: dt.datetime | None, end: dt.datetime | None) -> str:
    return (f"{start.isoformat() if start else 'the beginning'} to "
            f"{end.isoformat() if end else 'now'}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


__all__ = [
    "DEFAULT_RTOL",
    "Comparison",
    "Shift",
    "Side",
    "compare_models",
    "compare_predictions",
    "distribution_shift",
    "prediction_kind",
    "replay_model",
    "same",
]
