"""The ``workbench`` command: parse, call one library function, present.

Every error becomes one line on stderr and a non-zero exit (see :mod:`workbench.boundary`):
the library's own errors as they are, MLflow and connection errors naming the tracking
server, anything else as a bug. ``--debug`` (or ``WORKBENCH_DEBUG=1``) adds the traceback.
Commands that need the tracking server check it first, so a down server is one line in
seconds rather than MLflow's retries.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from workbench._version import __version__
from workbench.config import Settings
from workbench.errors import WorkbenchError


def _settings(**overrides: Any) -> Settings:
    return Settings.from_env(**overrides)


def _require_server() -> None:
    from workbench.client import require_server

    require_server(_settings())


class _ServerCommand(click.Command):
    """A command that needs the tracking server: checked after parsing (``--help`` still
    works with the server down), before the command's work."""

    def invoke(self, ctx: click.Context) -> Any:
        _require_server()
        return super().invoke(ctx)


class _MonitorCommand(click.Command):
    """A ``monitor`` command whose every failure to check, compare or join exits 2 (exit
    status 1 means drift for ``monitor drift``)."""

    needs_server = False

    def invoke(self, ctx: click.Context) -> Any:
        from workbench.errors import DriftDetected, MonitoringError

        try:
            if self.needs_server:
                _require_server()
            return super().invoke(ctx)
        except (DriftDetected, click.exceptions.ClickException, click.exceptions.Exit,
                click.exceptions.Abort):
            raise
        except Exception as error:
            if isinstance(error, WorkbenchError) and error.exit_code != 1:
                raise
            from workbench.boundary import describe

            doing = f"workbench monitor {self.name}"
            raise MonitoringError(describe(error, doing).message) from error


class _DriftCommand(_MonitorCommand):
    """``monitor drift``, ``compare``, ``replay``, ``performance``: need the tracking server."""

    needs_server = True


class _ServerGroup(click.Group):
    """A group whose every command needs the tracking server."""

    command_class = _ServerCommand


def _say(line: str) -> None:
    click.echo(line, err=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    text = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) if text else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in text]
    return "\n".join(line.rstrip() for line in lines)


def _turn_on_debug(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        import os

        # An environment variable, not a global: jobs and servers started from here inherit it.
        os.environ["WORKBENCH_DEBUG"] = "1"


@click.group()
@click.version_option(__version__, prog_name="workbench")
@click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_turn_on_debug,
              help="show the traceback of an error (same as WORKBENCH_DEBUG=1)")
def cli() -> None:
    """mlops-workbench: track, register, run, serve and monitor models from JupyterLab.

    Model instances are named {instance}_{version}_{data_date}, e.g. churn_v2_20240131.
    """


# -- platform ----------------------------------------------------------------------------------
@cli.group()
def platform() -> None:
    """The tracking platform: embedded (a local mlflow server process, the default) or
    compose (Postgres, MinIO, MLflow, pgAdmin, JupyterLab; --compose)."""


def _embedded(port: int | None):
    from workbench.platforms import EmbeddedPlatform

    return EmbeddedPlatform(_settings(port=port))


def _compose(directory: Path | None, overrides: tuple[Path, ...] = ()):
    from workbench.platforms.compose import ComposePlatform

    return ComposePlatform(_settings(), directory, overrides)


_compose_flag = click.option("--compose", "use_compose", is_flag=True,
                             help="the compose platform instead of the embedded one")
_compose_dir = click.option("--dir", "directory", type=click.Path(path_type=Path),
                            help="the compose platform's folder (default ./platform)")


@platform.command("init")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="write new secrets over an existing .env")
def platform_init(directory: Path | None, force: bool) -> None:
    """Write the compose platform (compose.yaml, .env with random secrets) into DIRECTORY."""
    from workbench.platforms.compose import init

    directory = directory or Path("platform")
    init(directory, force=force, progress=_say)
    click.echo(directory.resolve())


@platform.command("up")
@click.option("--port", type=int, help="tracking server port (default 5000 or WORKBENCH_PORT)")
@_compose_flag
@_compose_dir
@click.option("-f", "--override", "overrides", multiple=True, type=click.Path(path_type=Path),
              help="extra compose file layered on the platform's (with --compose)")
def platform_up(port: int | None, use_compose: bool, directory: Path | None,
                overrides: tuple[Path, ...]) -> None:
    """Start the tracking server unless it runs; print its URI."""
    if not use_compose:
        status = _embedded(port).up(_say)
        click.echo(status.tracking_uri)
        return
    from workbench.packaging.images import ensure_platform_images

    compose = _compose(directory, overrides)
    compose.check()
    ensure_platform_images(compose.workbench_images(), compose.settings, progress=_say)
    status = compose.up(_say)
    for service, url in status.urls.items():
        _say(f"  {service:8} {url}")
    _say(f"jobs and Lab containers: export WORKBENCH_DOCKER_NETWORK={status.network} "
         "WORKBENCH_CONTAINER_TRACKING_URI=http://mlflow:5000")
    _say("clients on this machine: export MLFLOW_TRACKING_USERNAME and "
         f"MLFLOW_TRACKING_PASSWORD from {compose.directory / '.env'} (MLflow asks for a user)")
    click.echo(compose.tracking_uri())


@platform.command("status")
@click.option("--port", type=int)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@_compose_flag
@_compose_dir
def platform_status(port: int | None, as_json: bool, use_compose: bool,
                    directory: Path | None) -> None:
    """Say whether the tracking server runs and answers (exit 1 if not)."""
    if use_compose:
        _compose_status(directory, as_json)
        return
    status = _embedded(port).status()
    if as_json:
        click.echo(json.dumps(status.as_dict()))
    elif status.running:
        scheduler = f"; scheduler pid {status.scheduler_pid}" if status.scheduler_pid else ""
        click.echo(f"running (pid {status.pid}) at {status.tracking_uri}"
                   f"{'' if status.healthy else ', not answering yet'}{scheduler}; "
                   f"state in {status.home}")
    else:
        click.echo(f"not running{': ' + status.note if status.note else ''}; "
                   "start it with `workbench platform up`")
    sys.exit(0 if status.running else 1)


def _compose_status(directory: Path | None, as_json: bool) -> None:
    status = _compose(directory).status()
    if as_json:
        click.echo(json.dumps({"project": status.project, "healthy": status.healthy,
                               "services": [vars(s) for s in status.services], "urls": status.urls}))
    elif not status.services:
        click.echo(f"not running; start it with `workbench platform up --compose` ({status.directory})")
    else:
        click.echo(_table(["service", "state", "health", "exit"],
                          [[s.name, s.state, s.health, s.exit_code] for s in status.services]))
    sys.exit(0 if status.healthy else 1)


@platform.command("down")
@click.option("--port", type=int)
@_compose_flag
@_compose_dir
@click.option("--volumes", is_flag=True, help="with --compose: delete the data volumes too")
def platform_down(port: int | None, use_compose: bool, directory: Path | None, volumes: bool) -> None:
    """Stop the tracking server and every process it started; keep the data."""
    if use_compose:
        _compose(directory).down(_say, volumes=volumes)
    else:
        _embedded(port).down(_say)
    click.echo("stopped")


@platform.command("logs")
@click.option("-n", "--lines", default=50, show_default=True)
@_compose_flag
@_compose_dir
@click.argument("service", required=False)
def platform_logs(lines: int, use_compose: bool, directory: Path | None, service: str | None) -> None:
    """Print the end of the tracking server's log (with --compose: of SERVICE or all)."""
    if use_compose:
        click.echo(_compose(directory).logs(lines, service))
    else:
        click.echo(_embedded(None).logs(lines))


# -- jobs ----------------------------------------------------------------------------------------
@cli.command("run")
@click.argument("notebook", type=click.Path(path_type=Path))
@click.option("-p", "--parameter", "parameters", nargs=2, multiple=True, metavar="NAME VALUE",
              help="set a parameter of the notebook's `parameters` cell (papermill syntax)")
@click.option("-y", "--parameters-yaml", help="parameters as a YAML mapping")
@click.option("-f", "--parameters-file", type=click.Path(exists=True, path_type=Path),
              help="parameters from a YAML file")
@click.option("--timeout", type=float, default=None, help="kill the job after S seconds")
@click.option("--executor", default=None,
              help="where to run: local (default) or docker (a container of the workbench image)")
@click.option("--experiment", default=None, help="MLflow experiment (default: the instance)")
@click.option("--kernel", "kernel_name", default=None, help="Jupyter kernel name")
@click.option("--image", default=None,
              help="image for --executor docker (default: the workbench image of this version)")
def run(notebook: Path, parameters: tuple[tuple[str, str], ...], parameters_yaml: str | None,
        parameters_file: Path | None, timeout: float | None, executor: str | None,
        experiment: str | None, kernel_name: str | None, image: str | None) -> None:
    """Run NOTEBOOK as a job with papermill; print the run id and output notebook."""
    from workbench.jobs import JobSpec, run_job
    from workbench.jobs.tracking import BackgroundTracker

    settings = _settings()
    # Forked before papermill and MLflow are imported: each is imported on its own core.
    tracker = BackgroundTracker(settings)
    try:
        values: dict[str, Any] = {}
        for source in (parameters_file.read_text() if parameters_file else None, parameters_yaml):
            if source:
                values.update(_yaml_mapping(source))
        values.update(dict(parameters))
        spec = JobSpec(notebook=notebook, parameters=values, executor=executor or settings.executor,
                       experiment=experiment, timeout=timeout or 0.0, kernel_name=kernel_name,
                       image=image)
        result = run_job(spec, settings, tracker=tracker, progress=_say, show_progress=True)
    finally:
        tracker.close()
    _say(f"job finished in {result.duration_s:.1f} s: {result.url}")
    click.echo(json.dumps({"run_id": result.run_id, "status": result.status,
                           "output_notebook": str(result.output_notebook)}))


def _yaml_mapping(text: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WorkbenchError(f"parameters are not valid YAML ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise WorkbenchError("parameters YAML must be a mapping of name: value")
    return data


# -- runs ----------------------------------------------------------------------------------------
@cli.group(cls=_ServerGroup)
def runs() -> None:
    """MLflow runs: list them, find the stale RUNNING ones and end them."""


def _runs_table(found: Sequence[Any]) -> str:
    return _table(["run_id", "name", "status", "started", "experiment", "notebook"],
                  [[r.run_id, r.run_name, r.status,
                    r.started_at.strftime("%Y-%m-%d %H:%M") if r.started_at else "-",
                    r.experiment_id, r.notebook or "-"] for r in found])


_experiment_option = click.option("-e", "--experiment", "experiments", multiple=True,
                                  help="only this experiment (repeatable; default: all)")


@runs.command("list")
@_experiment_option
@click.option("--status", help="only runs in this status (RUNNING, FINISHED, FAILED, KILLED)")
@click.option("--filter", "filter_string", default="",
              help="MLflow search filter, e.g. \"metrics.roc_auc > 0.8\"")
@click.option("-n", "--max", "max_results", default=50, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True)
def runs_list(experiments: tuple[str, ...], status: str | None, filter_string: str,
              max_results: int, as_json: bool) -> None:
    """List runs, newest first."""
    from workbench import tracking

    settings = _settings()
    page = tracking.search_runs(tracking.make_client(settings), settings, experiments or None,
                                status=status, filter_string=filter_string,
                                max_results=max_results)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in page.runs], indent=2))
    else:
        click.echo(_runs_table(page.runs))


@runs.command("stale")
@_experiment_option
@click.option("--older-than", default=24.0, show_default=True, type=float, metavar="HOURS",
              help="a RUNNING run whose process is unknown counts as stale after this long")
@click.option("--end", "end_status", type=click.Choice(["FAILED", "KILLED", "FINISHED"]),
              default=None, help="end them with this status")
def runs_stale(experiments: tuple[str, ...], older_than: float, end_status: str | None) -> None:
    """RUNNING runs nobody will end (their kernel or job is gone); --end ends them."""
    from workbench import tracking

    settings = _settings()
    client = tracking.make_client(settings)
    found = tracking.stale_runs(client, settings, experiments or None, older_than * 3600)
    if not found:
        _say("no stale RUNNING runs")
        return
    click.echo(_runs_table(found))
    if end_status:
        ended = tracking.end_runs(client, [r.run_id for r in found], end_status)
        _say(f"ended {len(ended)} run(s) {end_status}")
    else:
        _say(f"{len(found)} stale run(s); end them with --end FAILED (or KILLED)")


@runs.command("end")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--status", type=click.Choice(["FAILED", "KILLED", "FINISHED"]), default="KILLED",
              show_default=True)
def runs_end(run_ids: tuple[str, ...], status: str) -> None:
    """End RUN_IDS with --status (runs already ended are left as they are)."""
    from workbench import tracking

    settings = _settings()
    ended = tracking.end_runs(tracking.make_client(settings), run_ids, status)
    for run_id in run_ids:
        click.echo(f"{run_id} {status if run_id in ended else 'already ended'}")


# -- models --------------------------------------------------------------------------------------
@cli.group(cls=_ServerGroup)
def models() -> None:
    """The model registry: list, show, compare and promote model instances."""


def _registry():
    from workbench.registry import Registry

    return Registry(_settings())


@models.command("list")
@click.argument("instance", required=False)
@click.option("--json", "as_json", is_flag=True)
def models_list(instance: str | None, as_json: bool) -> None:
    """List model instances (of one registered model, or all)."""
    registry = _registry()
    instances = registry.list_instances(instance)
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in instances], indent=2))
        return
    from workbench import tasks

    # One model's instances: the metric they rank by (a regression model's recorded rmse in a
    # project whose primary metric is roc_auc); every model: the project's.
    metric = (tasks.primary_metric(registry.settings, instances) if instance
              else registry.settings.primary_metric)
    click.echo(_table(
        ["name", "model", "mlflow", "version", "data_date", metric, "aliases"],
        [[i.full_name or "-", i.registered_model, i.number, i.model_version, i.data_date,
          _metric(i.metrics.get(metric)), ",".join(i.promotion_aliases)] for i in instances],
    ))


def _metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@models.command("show")
@click.argument("ref")
def models_show(ref: str) -> None:
    """Show one instance (full name, instance@alias or models:/ URI) with its lineage."""
    registry = _registry()
    instance = registry.resolve(ref)
    data = instance.as_dict()
    data["ui"] = registry.ui_url(instance)
    click.echo(json.dumps(data, indent=2))


@models.command("compare")
@click.argument("refs", nargs=-1, required=True)
@click.option("--metric", help="metric to sort by (default: the primary metric)")
def models_compare(refs: tuple[str, ...], metric: str | None) -> None:
    """Compare instances, best first: one registered model name, or several references.

    Best is in the metric's direction: rmse, mae, log_loss lowest first (the
    greater_is_better setting for the primary metric); its column header says which.
    """
    from workbench import tasks

    registry = _registry()
    target: str | list[str] = refs[0] if len(refs) == 1 and "_" not in refs[0] and ":" not in refs[0] \
        and "@" not in refs[0] else list(refs)
    ranked = registry.compare(target, metric)
    metric = metric or tasks.primary_metric(registry.settings, ranked)
    greater = tasks.greater_is_better(metric, registry.settings, ranked)
    names = sorted({m for i in ranked for m in i.metrics if not m.startswith("training_")})[:6]
    if metric not in names:
        names = [metric, *names][:6]
    headers = [f"{m} ({tasks.direction_word(greater)})" if m == metric else m for m in names]
    click.echo(_table(
        ["rank", "name", *headers, "aliases"],
        [[n + 1, i.label, *(_metric(i.metrics.get(m)) for m in names), ",".join(i.promotion_aliases)]
         for n, i in enumerate(ranked)],
    ))


@models.command("promote")
@click.argument("ref")
@click.option("--alias", type=click.Choice(["champion", "challenger"]), default="champion",
              show_default=True)
@click.option("--reason", default="", help="why (kept in the audit trail)")
@click.option("--force", is_flag=True, help="promote even if a gate refuses (needs --reason)")
def models_promote(ref: str, alias: str, reason: str, force: bool) -> None:
    """Point champion (or challenger) at an instance.

    Gates refuse a champion worse than the current one on the primary metric, and an
    instance whose last drift check found drift; --force --reason TEXT overrides them.
    """
    from workbench.errors import PromotionRefused

    try:
        promotion = _registry().promote(ref, alias, reason=reason, override=force)
    except PromotionRefused as exc:
        hint = (f"to promote it anyway: workbench models promote {ref} --alias {alias} "
                "--force --reason TEXT")
        raise PromotionRefused(exc.summary, exc.gates, exc.alias, exc.candidate, hint) from None
    previous = f" (was {promotion.previous.label})" if promotion.previous else ""
    overridden = (f" [overrode the {', '.join(promotion.overridden)} gate]"
                  if promotion.overridden else "")
    click.echo(f"{alias} -> {promotion.current.label}{previous}{overridden}")


@models.command("history")
@click.argument("instance")
@click.option("--alias", type=click.Choice(["champion", "challenger"]), default=None,
              help="only this alias's moves")
@click.option("--json", "as_json", is_flag=True, help="print the records as JSON")
def models_history(instance: str, alias: str | None, as_json: bool) -> None:
    """Every promotion, rollback and retrain proposal of INSTANCE, oldest first."""
    from workbench.policy.proposals import PROPOSED_BY, list_proposals

    registry = _registry()
    records = registry.history(instance, alias)
    proposals = [] if alias else list_proposals(registry.settings, instance, registry)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in records], indent=2))
        return
    if not records and not proposals:
        _say(f"no promotions recorded for {instance}")
    rows = [[r.at, r.action, r.alias, r.from_name or "-", r.to_name, r.by,
             ",".join(r.overridden) or "-", r.reason or "-"] for r in records]
    # Retrain proposals: what the policy proposed, with both metrics on the same rows.
    rows += [[p.at, "proposal", p.decision, p.champion or "-", p.candidate or "-", PROPOSED_BY,
              "-", p.summary()] for p in proposals]
    click.echo(_table(["when", "action", "alias", "from", "to", "by", "overridden", "reason"],
                      sorted(rows, key=lambda row: row[0])))


@models.command("rollback")
@click.argument("instance")
@click.option("--alias", type=click.Choice(["champion", "challenger"]), default="champion",
              show_default=True)
@click.option("--reason", required=True, help="why (kept in the history)")
def models_rollback(instance: str, alias: str, reason: str) -> None:
    """Move ALIAS of INSTANCE back to the instance its holder replaced.

    Gates do not refuse a rollback (it restores an instance that passed them once); any
    that would have refused is recorded as overridden in the history.
    """
    promotion = _registry().rollback(instance, alias, reason=reason)
    was = f" (was {promotion.previous.label})" if promotion.previous else ""
    bypassed = (f" [bypassed the {', '.join(promotion.overridden)} gate]"
                if promotion.overridden else "")
    click.echo(f"{alias} -> {promotion.current.label}{was}{bypassed}")


# -- predictions ---------------------------------------------------------------------------------
_engine_option = click.option(
    "--engine", type=click.Choice(["local", "spark"]), default="local", show_default=True,
    help="local: streaming, one machine; spark: Apache Spark (the [spark] extra)")
_master_option = click.option(
    "--master", default=None,
    help="with --engine spark: local[*], spark://HOST:PORT, yarn, k8s://... "
    "(default WORKBENCH_SPARK_MASTER, else local[*])")
_conf_option = click.option(
    "--conf", "conf", multiple=True, metavar="KEY=VALUE",
    help="with --engine spark: a Spark property (repeatable), e.g. spark.executor.memory=4g")


def _spark_properties(conf: tuple[str, ...]) -> dict[str, str]:
    from workbench.config import parse_properties

    try:
        return parse_properties(";".join(conf))
    except ValueError as exc:
        raise click.BadParameter(f"{exc}; write --conf key=value", param_hint="--conf") from None


@cli.command("predict", cls=_ServerCommand)
@click.argument("ref")
@click.option("--input", "input_path", required=True,
              help="a CSV/Parquet file, a folder of them, or a glob ('data/*.parquet')")
@click.option("--output", "output_path", required=True, type=click.Path(path_type=Path),
              help="local: a .csv or .parquet file; spark: a folder of Parquet files")
@_engine_option
@_master_option
@_conf_option
@click.option("--batch-rows", type=click.IntRange(min=1), default=None,
              help="with --engine local: rows scored at a time (default 500000)")
@click.option("--log", "log_rows", is_flag=True,
              help="also log the scored rows to the prediction store (for monitor labels)")
def predict(ref: str, input_path: str, output_path: Path, engine: str, master: str | None,
            conf: tuple[str, ...], batch_rows: int | None, log_rows: bool) -> None:
    """Batch-score INPUT with a model instance into OUTPUT (same columns on every engine:
    the input's, prediction, probability for classifiers, model_name, scored_at)."""
    if engine == "spark":
        if log_rows:
            raise click.UsageError("--log needs --engine local")
        from workbench.engines.spark import predict_spark

        result = predict_spark(ref, input_path, output_path, _settings(), master=master,
                               conf=_spark_properties(conf), progress=_say)
    else:
        if master or conf:
            raise click.UsageError("--master and --conf need --engine spark")
        from workbench.engines.local import DEFAULT_BATCH_ROWS
        from workbench.predict import predict_file

        result = predict_file(ref, input_path, output_path, _settings(),
                              batch_rows=batch_rows or DEFAULT_BATCH_ROWS, progress=_say,
                              log=log_rows)
    click.echo(f"{result.rows} rows scored by {result.model.label} -> {result.output}")
    if log_rows:
        _say(f"{result.logged} rows logged to the prediction store")


# -- serving -------------------------------------------------------------------------------------
@cli.command("serve")
@click.argument("ref")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.option("--max-rows", type=int, help="largest batch accepted (default 10000)")
@click.option("--max-body-bytes", type=int, help="largest request body (default 10 MiB)")
@click.option("--log-url", default=None, help="SQLAlchemy URL of the prediction store "
              "(default: SQLite under the state directory)")
@click.option("--no-log", is_flag=True, help="do not log predictions")
@click.option("--max-batch-rows", type=int,
              help="most rows merged into one predict call from waiting requests (default 1024)")
@click.option("--max-batch-wait-ms", type=float,
              help="longest wait, after a call that merged requests, for those clients' "
              "next ones (default 2; 0: never wait)")
@click.option("--timeout-ms", type=int,
              help="answer 504 when a prediction takes longer (default 60000; 0: no limit)")
@click.option("--allowed-hosts", multiple=True, metavar="NAME",
              help="another host name accepted in Host/Origin (repeatable; '*' for any)")
@click.option("--token", default=None,
              help="require 'Authorization: Bearer TOKEN' (or set WORKBENCH_SERVE_TOKEN)")
@click.option("--follow", is_flag=True,
              help="watch REF's alias and swap its new instances in without downtime")
@click.option("--poll-s", type=float, help="seconds between two looks for --follow (default 10)")
@click.option("--shadow", metavar="REF",
              help="also score every request with REF (a challenger), off the response path")
def serve(ref: str, host: str, port: int, workers: int, max_rows: int | None,
          max_body_bytes: int | None, log_url: str | None, no_log: bool,
          max_batch_rows: int | None, max_batch_wait_ms: float | None, timeout_ms: int | None,
          allowed_hosts: tuple[str, ...], token: str | None, follow: bool,
          poll_s: float | None, shadow: str | None) -> None:
    """Serve a model instance (or a folder in MLflow format) over HTTP (MLflow scoring
    protocol on /invocations)."""
    from workbench.serving.server import serve as run_server

    if not Path(ref).is_dir() or shadow:  # a folder in MLflow format needs no registry
        _require_server()
    run_server(ref, _settings(), host=host, port=port, workers=workers, max_rows=max_rows,
               max_body_bytes=max_body_bytes, log_url="" if no_log else log_url,
               max_batch_rows=max_batch_rows, max_batch_wait_ms=max_batch_wait_ms,
               timeout_ms=timeout_ms, allowed_hosts=tuple(h for value in allowed_hosts
                                                          for h in value.split(",")),
               token=token, follow=follow, poll_s=poll_s, shadow=shadow, progress=_say)


# -- images and packaging ------------------------------------------------------------------------
@cli.group()
def image() -> None:
    """The workbench's images, built from a wheelhouse the host resolves."""


@image.command("build")
@click.argument("name", type=click.Choice(["workbench", "serving", "tracking"]))
def image_build(name: str) -> None:
    """Build NAME: `workbench` (JupyterLab + job runner), `serving` (the model runtime) or
    `tracking` (the compose platform's MLflow server)."""
    from workbench.packaging.images import build

    built = build(name, _settings(), progress=_say)
    click.echo(built.tag)


@cli.command("package", cls=_ServerCommand)
@click.argument("ref")
def package(ref: str) -> None:
    """Build REF's REST serving image: workbench-model/{instance}:{version}_{data_date}."""
    from workbench.packaging.model_image import package_model

    packaged = package_model(ref, _settings(), progress=_say)
    click.echo(packaged.tag)


# -- monitoring ----------------------------------------------------------------------------------
@cli.group()
def monitor() -> None:
    """Monitoring: current data against a model's reference profile; two models on the same
    requests; labels that arrive later and performance."""


@monitor.command("drift", cls=_DriftCommand)
@click.argument("ref")
@click.option("--current", type=click.Path(path_type=Path),
              help="CSV/Parquet file of current data (default: the model's logged predictions)")
@click.option("--since", help="logged predictions from: 2024-04-01, 2024-04-01T12:00, 20240401, 7d")
@click.option("--until", help="logged predictions before this time (a date includes its day)")
@click.option("--thresholds-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML mapping of thresholds, e.g. psi_drift: 0.3")
@click.option("-t", "--threshold", "threshold_values", nargs=2, multiple=True, metavar="NAME VALUE",
              help="set one threshold (psi_warn, psi_drift, ks_pvalue, ks_drift, js_drift, ...)")
@click.option("--report-dir", type=click.Path(path_type=Path),
              help="where to write the report (default: under the state directory)")
@click.option("--json", "as_json", is_flag=True, help="print the JSON summary instead of the table")
@_engine_option
@_master_option
@_conf_option
def monitor_drift(ref: str, current: Path | None, since: str | None, until: str | None,
                  thresholds_file: Path | None, threshold_values: tuple[tuple[str, str], ...],
                  report_dir: Path | None, as_json: bool, engine: str, master: str | None,
                  conf: tuple[str, ...]) -> None:
    """Check REF's current data for drift; log the report to MLflow.

    With --engine spark, --current may be a folder or glob of any size: Spark counts it in
    two aggregation jobs, with the same figures as the local check.

    Exit status: 0 ok or warn, 1 drift, 2 the check cannot be made (bad input).
    """
    from workbench.monitoring.drift import Thresholds
    from workbench.monitoring.service import check_model_drift

    thresholds = Thresholds.from_yaml(thresholds_file.read_text() if thresholds_file else "",
                                      dict(threshold_values))
    check = check_model_drift(ref, _settings(), current=current, since=since, until=until,
                              thresholds=thresholds, report_dir=report_dir, progress=_say,
                              engine=engine, master=master, conf=_spark_properties(conf))
    if as_json:
        click.echo(check.summary_json.read_text())
    else:
        click.echo(_table(
            ["feature", "kind", "status", "psi", "test", "statistic", "p_value", "js", "missing"],
            [[r["feature"], r["kind"], r["status"], _number(r["psi"], ".3f"), r["test"],
              _number(r["statistic"], ".3f" if r["test"] == "ks" else ".1f"),
              _number(r["p_value"], ".2g"), _number(r["js_distance"], ".3f"),
              f"{r['missing_reference']:.1%} -> {r['missing_current']:.1%}"]
             for r in check.result.rows()],
        ))
        click.echo(f"verdict: {check.result.summary_line()}")
    for note in check.result.notes:
        _say(f"note: {note}")
    _say(f"report: {check.report_html}")
    check.raise_for_drift()


@monitor.command("profile", cls=_DriftCommand)
@click.argument("ref")
@click.option("--data", required=True,
              help="the training data: a CSV/Parquet file, a folder of them, or a glob")
@_engine_option
@_master_option
@_conf_option
def monitor_profile(ref: str, data: str, engine: str, master: str | None,
                    conf: tuple[str, ...]) -> None:
    """Build REF's reference profile from DATA and store it with its version (replacing any).

    For models registered without an input frame, and training data too large for pandas
    (--engine spark).

    Exit status: 0 stored, 2 it cannot be built or stored.
    """
    from workbench.monitoring.service import profile_model

    stored = profile_model(ref, _settings(), data, engine=engine, master=master,
                           conf=_spark_properties(conf), progress=_say)
    profile = stored.profile
    click.echo(_table(["feature", "kind", "count", "missing"],
                      [[f.name, f.kind, f.count, f.missing]
                       for f in (*profile.features,
                                 *((profile.prediction,) if profile.prediction else ()))]))
    click.echo(f"{'replaced' if stored.replaced else 'stored'} the reference profile of "
               f"{stored.model.label}: {profile.rows} rows")


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None or value != value else format(value, spec)


_window_since = "predictions logged from: 2024-04-01, 2024-04-01T12:00, 20240401, 1d, 12h"


@monitor.command("compare", cls=_DriftCommand)
@click.argument("a")
@click.argument("b")
@click.option("--since", default="1d", show_default=True, help=_window_since)
@click.option("--until", help="predictions logged before this time (a date includes its day)")
@click.option("--json", "as_json", is_flag=True, help="print the comparison as JSON")
def monitor_compare(a: str, b: str, since: str, until: str | None, as_json: bool) -> None:
    """Compare A and B on the same logged requests.

    Agreement, prediction shift and latency; e.g. churn@champion and churn@challenger,
    served with --shadow.

    Exit status: 0 compared, 2 the comparison cannot be made (nothing paired, bad input).
    """
    from workbench.monitoring.compare import compare_models

    _show_comparison(compare_models(a, b, _settings(), since=since or None, until=until,
                                    progress=_say), as_json)


@monitor.command("replay", cls=_DriftCommand)
@click.argument("ref")
@click.option("--against", help="whose logged inputs to replay (default: REF's instance@champion)")
@click.option("--since", default="7d", show_default=True, help=_window_since)
@click.option("--until", help="predictions logged before this time (a date includes its day)")
@click.option("--json", "as_json", is_flag=True, help="print the comparison as JSON")
def monitor_replay(ref: str, against: str | None, since: str, until: str | None,
                   as_json: bool) -> None:
    """Replay logged inputs through REF offline.

    Scores the inputs --against logged and compares with what was logged; nothing is
    deployed or written to the store.

    Exit status: 0 compared, 2 the replay cannot be made (no logged inputs, bad input).
    """
    from workbench.monitoring.compare import replay_model

    _show_comparison(replay_model(ref, _settings(), against=against, since=since or None,
                                  until=until, progress=_say), as_json)


def _show_comparison(comparison: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(comparison.as_dict(), indent=2))
        return
    a, b = comparison.a, comparison.b
    b_title = f"B: {b.model}" + (" (replayed)" if comparison.mode == "replay" else "")
    click.echo(_table(["", f"A: {a.model}", b_title], [
        ["rows", a.rows, b.rows],
        ["unpaired rows", a.unpaired, b.unpaired],
        ["roles", _roles(a.roles), _roles(b.roles)],
        ["latency p50 ms", _number(a.latency_p50_ms, ".3g"), _number(b.latency_p50_ms, ".3g")],
        ["latency p99 ms", _number(a.latency_p99_ms, ".3g"), _number(b.latency_p99_ms, ".3g")],
    ]))
    agreement = comparison.agreement
    click.echo(f"paired rows: {comparison.paired}; agreement: {agreement:.1%} "
               f"({comparison.agreeing} of {comparison.paired}"
               + (f", floats within {comparison.rtol:g} relative)" if comparison.kind == "numeric"
                  else ")"))
    shift = comparison.shift
    if shift is None:
        click.echo("shift: -")
    elif shift.test == "ks":
        click.echo(f"shift (numeric, two-sample KS): statistic {shift.statistic:.3f}, p-value "
                   f"{shift.p_value:.2g}; mean {shift.mean_a:.4g} -> {shift.mean_b:.4g}")
    else:
        click.echo(f"shift (labels, chi-square): statistic {shift.statistic:.1f}, p-value "
                   f"{shift.p_value:.2g}; JS distance {shift.js_distance:.3f}; "
                   + ", ".join(f"{label}: {n_a} -> {n_b}" for label, n_a, n_b in shift.counts[:5]))
    for note in comparison.notes:
        _say(f"note: {note}")


@monitor.command("labels", cls=_MonitorCommand)
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--id-column", default=None,
              help="the id both the file and the logged inputs hold (request_id: the logged "
                   "request id)  [default: WORKBENCH_LABEL_ID_COLUMN]")
@click.option("--label-column", default="label", show_default=True, help="the ground truth")
@click.option("--json", "as_json", is_flag=True, help="print the counts as JSON")
def monitor_labels(file: Path, id_column: str, label_column: str, as_json: bool) -> None:
    """Join labels that arrived later (CSV/Parquet) with the logged predictions.

    Stores them in the prediction store; late, duplicate and unmatched labels are counted.

    Exit status: 0 stored, 2 the labels cannot be read or joined.
    """
    from workbench.errors import MonitoringError
    from workbench.monitoring.labels import ingest_labels

    settings = _settings()
    id_column = id_column or settings.label_id_column
    if not id_column:
        raise MonitoringError("no id column to join the labels on: name it with --id-column "
                              "(or set WORKBENCH_LABEL_ID_COLUMN)")
    done = ingest_labels(file, settings.prediction_store_url, id_column=id_column,
                         label_column=label_column, progress=_say)
    if as_json:
        click.echo(json.dumps(done.as_dict(), indent=2))
        return
    click.echo(_table(["labels", "count"], [
        ["rows in the file", done.rows], ["new", done.new_labels],
        ["matched", f"{done.matched} ({done.matched_rows} predicted rows)"],
        ["unmatched (kept, matched later)", done.unmatched],
        ["earlier ones matched now", done.rematched],
        ["duplicates (first kept)", f"{done.duplicates} ({done.conflicting} conflicting)"],
        ["missing an id or a label", done.missing],
        ["late (window already evaluated)", done.late],
    ]))
    for model, rows in done.by_model.items():
        _say(f"{model}: {rows} predicted rows labelled"
             + (f", {done.late_by_model[model]} late" if model in done.late_by_model else ""))


@monitor.command("performance", cls=_DriftCommand)
@click.argument("ref")
@click.option("--since", default="90d", show_default=True, help=_window_since)
@click.option("--until", help="predictions logged before this time (a date includes its day)")
@click.option("--window", type=click.Choice(["day", "week", "month"]), default="month",
              show_default=True)
@click.option("--metric", help="default: the primary_metric setting")
@click.option("--json", "as_json", is_flag=True, help="print the windows as JSON")
def monitor_performance(ref: str, since: str, until: str | None, window: str,
                        metric: str | None, as_json: bool) -> None:
    """REF's metric per window on the labels joined to its predictions; log it to MLflow.

    Tags the model version with the latest value (the performance promotion gate reads it).

    Exit status: 0 computed, 2 it cannot be (no predictions or labels, bad input).
    """
    from workbench.monitoring.performance import evaluate_performance

    report = evaluate_performance(ref, _settings(), since=since, until=until, window=window,
                                  metric=metric, progress=_say)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(_table(["window", "from", "to", "rows", "labelled", "late", report.metric], [
            [w.label, w.start.isoformat(timespec="minutes"), w.end.isoformat(timespec="minutes"),
             w.rows, w.labelled, w.late, _number(w.value, ".4f")] for w in report.windows]))
        latest = report.latest
        click.echo(f"latest: {report.metric} {latest.value:.4f} in {latest.label}"
                   if latest and latest.value is not None else "latest: -")
    for note in report.notes:
        _say(f"note: {note}")


def _roles(roles: dict[str, int]) -> str:
    return ", ".join(f"{role} {count}" for role, count in roles.items()) or "-"


# -- policies and the scheduler ------------------------------------------------------------------
@cli.group()
def policy() -> None:
    """Retraining policies: check, proposals.

    One file per instance: policies/<instance>.yaml."""


@policy.command("check")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
def policy_check(files: tuple[Path, ...]) -> None:
    """Check policy files; one line per problem.

    FILES default to every file in the policies folder. Exit status 2 when any file has a
    problem.
    """
    from workbench.policy.schema import check_policy_file, policy_files

    settings = _settings()
    paths = list(files) or policy_files(settings.project_root, settings.policies_dir)
    if not paths:
        _say(f"no policy files in {settings.policies_dir}")
        return
    failed = False
    for path in paths:
        checked, problems = check_policy_file(path, settings.project_root)
        for line in problems:
            click.echo(f"error: {line}", err=True)
        failed = failed or bool(problems)
        if checked is not None and not problems:
            schedules = ", ".join(f"{kind} '{s.cron}' {checked.schedule_timezone(kind)}"
                                  for kind, s in checked.schedules.items()) or "no schedules"
            click.echo(f"ok: {path} (instance {checked.instance}; {schedules})")
    if failed:
        sys.exit(2)


@policy.command("proposals", cls=_ServerCommand)
@click.argument("instance")
@click.option("--json", "as_json", is_flag=True, help="print the proposals as JSON")
def policy_proposals(instance: str, as_json: bool) -> None:
    """Retrain proposals of INSTANCE, oldest first.

    Each with its trigger, both metrics on the same rows, the decision and why."""
    from workbench.policy.proposals import list_proposals

    proposals = list_proposals(_settings(), instance)
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in proposals], indent=2))
        return
    if not proposals:
        _say(f"no proposals recorded for {instance}")
    click.echo(_table(
        ["when", "trigger", "candidate", "champion", "metric", "cand.", "champ.", "rows",
         "agreement", "decision", "why"],
        [[p.at, p.trigger, p.candidate or "-", p.champion or "-", p.metric,
          _metric(p.candidate_value), _metric(p.champion_value), p.rows,
          "-" if p.agreement is None else f"{p.agreement:.1%}", p.decision, p.reason]
         for p in proposals]))


@cli.group()
def schedule() -> None:
    """The policies' schedules and their history."""


@schedule.command("list")
@click.option("--json", "as_json", is_flag=True)
def schedule_list(as_json: bool) -> None:
    """Every schedule, its next run, its state."""
    import datetime as dt

    from workbench.policy.scheduler import list_schedules

    jobs = list_schedules(_settings())
    if as_json:
        click.echo(json.dumps([j.as_dict() for j in jobs], indent=2))
        return
    click.echo(_table(["job", "cron", "timezone", "next run (UTC)", "state", "policy"],
                      [[j.id, j.cron, j.timezone,
                        j.next_run.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
                        if j.next_run
                        else "-", "paused" if j.paused else "scheduled", j.policy_file]
                       for j in jobs]))


@schedule.command("pause")
@click.argument("job")
def schedule_pause(job: str) -> None:
    """Pause JOB (e.g. churn.drift) until resumed.

    The pause is kept in the store, across restarts."""
    from workbench.policy.scheduler import pause_schedule

    pause_schedule(_settings(), job)
    click.echo(f"{job}: paused")


@schedule.command("resume")
@click.argument("job")
def schedule_resume(job: str) -> None:
    """Resume JOB from its next fire time after now."""
    from workbench.policy.scheduler import resume_schedule

    resumed = resume_schedule(_settings(), job)
    when = resumed.next_run.isoformat(timespec="seconds") if resumed.next_run else "-"
    click.echo(f"{job}: next run {when}")


@schedule.command("run-now", cls=_ServerCommand)
@click.argument("job")
def schedule_run_now(job: str) -> None:
    """Fire JOB now in this process; recorded.

    As the scheduler would fire it, under the same lock; the history says run-now."""
    from workbench.policy.scheduler import run_now

    outcome = run_now(_settings(), job, progress=_say)
    click.echo(json.dumps(outcome.as_dict(), indent=2))


@schedule.command("history")
@click.argument("job", required=False)
@click.option("-n", "--limit", default=50, show_default=True, help="newest entries to show")
@click.option("--json", "as_json", is_flag=True)
def schedule_history(job: str | None, limit: int, as_json: bool) -> None:
    """What the scheduler did, one line per event.

    Of JOB, or of every job: started, finished, failed, missed, skipped."""
    from workbench.policy.scheduler import history

    entries = history(_settings(), job, limit)
    if as_json:
        click.echo(json.dumps([e.as_dict() for e in entries], indent=2))
        return
    if not entries:
        _say("no history yet")
    click.echo(_table(["recorded", "job", "event", "trigger", "scheduled for", "runs", "detail"],
                      [[e.recorded_at, e.job_id, e.event, e.trigger, e.scheduled_for,
                        ",".join(r[:8] for r in e.run_ids) or "-", e.detail or "-"]
                       for e in entries]))


# -- lab -----------------------------------------------------------------------------------------
@cli.command("lab")
@click.option("--port", type=int, help="JupyterLab port (default 8888 or WORKBENCH_LAB_PORT)")
@click.option("--no-platform", is_flag=True, help="do not start the embedded platform")
@click.option("--docker", "in_docker", is_flag=True, help="run Lab in a container of the workbench image")
@click.option("--image", default=None, help="image for --docker (default: the workbench image)")
def lab(port: int | None, no_platform: bool, in_docker: bool, image: str | None) -> None:
    """Start JupyterLab (127.0.0.1, token auth) with the magics in every kernel."""
    import os

    from workbench.lab import lab_command, lab_environment

    settings = _settings()
    if not no_platform and settings.tracking_uri == settings.embedded_tracking_uri:
        from workbench.platforms import EmbeddedPlatform

        EmbeddedPlatform(settings).up(_say)
    if in_docker:
        _lab_in_docker(settings, port, image)
        return
    command = lab_command(settings, port)
    _say(f"starting JupyterLab on {settings.host}:{port or settings.lab_port} "
         f"(tracking: {settings.tracking_uri})")
    os.execve(command[0], command, lab_environment(settings))


def _lab_in_docker(settings: Settings, port: int | None, image: str | None) -> None:
    from workbench.lab import start_lab_container

    lab = start_lab_container(settings, image=image, port=port, progress=_say)
    click.echo(lab.url)
    _say("Ctrl-C stops and removes the container")
    try:
        for text in lab.log_lines():
            click.echo(text, err=True, nl=False)
    except KeyboardInterrupt:
        pass
    finally:
        lab.stop()
        _say("JupyterLab container removed")


# -- your own project ----------------------------------------------------------------------------
def _columns(text: str | None) -> list[str] | None:
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


@cli.command("new")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--instance", required=True,
              help="the model instance it trains: a lowercase slug without '_' (e.g. churn-eu)")
@click.option("--data", type=click.Path(path_type=Path),
              help="a .csv or .parquet file to train on (default: generated example data)")
@click.option("--target", help="the column of --data the model predicts")
@click.option("--task", type=click.Choice(["classification", "regression"]),
              help="default: inferred from the target (example data: classification)")
@click.option("--numeric", metavar="COLS", help="numeric feature columns, comma separated "
              "(default: inferred)")
@click.option("--categorical", metavar="COLS", help="categorical feature columns, comma "
              "separated (default: inferred)")
@click.option("--metric", help="primary metric (default: roc_auc for two classes, f1_macro for more, "
              "rmse for regression)")
@click.option("--data-date", help="the data's cut-off, YYYYMMDD (default: today)")
def new(path: Path, instance: str, data: Path | None, target: str | None, task: str | None,
        numeric: str | None, categorical: str | None, metric: str | None,
        data_date: str | None) -> None:
    """Make a project in PATH from the workbench's template (copier): layout, notebooks,
    src/ code, tests, policy, settings; git init and a first commit."""
    from workbench.project import new_project

    made = new_project(path, instance, _settings(), data=data, target=target, task=task,
                       numeric=_columns(numeric), categorical=_columns(categorical),
                       metric=metric, data_date=data_date, progress=_say)
    if made.fallback_identity:
        _say("git has no user.name/user.email here: the first commit was made as "
             "mlops-workbench <mlops-workbench@localhost>; set yours with `git config --global "
             "user.name ...` and `git config --global user.email ...`")
    _say(f"{'example data' if made.example_data else 'data'}: "
         f"{made.data_file.relative_to(made.path)}; template {made.template_version}; "
         f"first commit {made.commit[:8]}")
    _say(f"next: cd {path} && workbench run notebooks/train.ipynb   (trains "
         f"{made.instance}_v1_{made.data_date}; the tracking server must run: "
         "workbench platform up)")
    click.echo(made.path)


@cli.group()
def template() -> None:
    """The project template `workbench new` renders."""


@template.command("update")
@click.argument("path", required=False, default=".", type=click.Path(path_type=Path))
def template_update(path: Path) -> None:
    """Bring the project in PATH (default: here) to the template's newest version, keeping
    your changes (copier's three-way update; conflicts are marked in the files)."""
    from workbench.project import update_project

    done = update_project(path, _settings())
    if not done.updated:
        click.echo(f"{done.path}: already on the newest template ({done.new_version})")
        return
    click.echo(f"{done.path}: template {done.old_version} -> {done.new_version}; "
               f"{len(done.changed)} file(s) changed, not committed (review with git diff)")
    for name in done.conflicts:
        click.echo(f"conflict: {name} (resolve the <<<<<<< / >>>>>>> markers)")
    if done.conflicts:
        sys.exit(1)


# -- demo ----------------------------------------------------------------------------------------
@cli.group(invoke_without_command=True)
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Run the whole MLOps cycle on the embedded platform (or `demo data` for the data only)."""
    if ctx.invoked_subcommand is None:
        from workbench.demo.cycle import run_demo

        summary = run_demo(_settings(), progress=_say)
        click.echo(summary.render())


@demo.command("data")
@click.option("--out", type=click.Path(path_type=Path), help="folder (default: data/ in the project)")
def demo_data(out: Path | None) -> None:
    """Write the example churn tables, one per month."""
    from workbench.demo.data import write_demo_data

    paths = write_demo_data(out or _settings().data_dir, progress=_say)
    click.echo(f"{len(paths)} tables in {paths[0].parent}")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: one line on stderr and a non-zero exit for every error; a traceback only
    with ``--debug`` or ``WORKBENCH_DEBUG=1``."""
    import os

    # Keep stdout for results (JSON, URIs); the CLI prints run links itself, on stderr.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # The commands say what they do step by step; MLflow's download bars would drown that
    # (and reach job kernels and servers started from here, which inherit it).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    args = list(argv) if argv is not None else sys.argv[1:]
    _warnings_as_lines()
    try:
        cli.main(args=args, prog_name="workbench", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # the error boundary: every other error is one line
        from workbench.boundary import debug_requested, describe

        failure = describe(exc, _doing(args),
                           debug_hint="run again with `workbench --debug ...` (or WORKBENCH_DEBUG=1)")
        if debug_requested():
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        click.echo(f"error: {failure.message}", err=True)
        sys.exit(failure.exit_code)


def _doing(args: Sequence[str]) -> str:
    """``workbench models list`` for the error line: the command words, no values."""
    words: list[str] = ["workbench"]
    command: click.Command = cli
    for arg in args:
        if arg.startswith("-"):
            continue
        sub = command.commands.get(arg) if isinstance(command, click.Group) else None
        if sub is None:
            break
        words.append(arg)
        command = sub
    return " ".join(words)


def _warnings_as_lines() -> None:
    """The workbench's own warnings (an unknown setting) as ``warning: ...`` lines."""
    import warnings

    from workbench.config import UnknownSetting

    show = warnings.showwarning

    def one_line(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: Any = None, line: str | None = None) -> None:
        if issubclass(category, UnknownSetting):
            click.echo(f"warning: {message}", err=True)
        else:
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = one_line


if __name__ == "__main__":
    main()
