"""``%mlops_track`` and ``%mlops_package``: thin faces over the tracking and registry API.

Each magic parses its line, calls one library function and prints the result. Every error
becomes a one-line ``UsageError`` (see :mod:`workbench.boundary`): a data scientist sees what
is wrong and how to fix it, never a traceback from MLflow; a down tracking server is said
in seconds, naming its URI. ``%env WORKBENCH_DEBUG=1`` shows the traceback instead. Errors
of the user's own code in a ``%%mlops_track`` cell are theirs and pass through unchanged.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool

from workbench import client, tracking
from workbench.boundary import debug_requested, describe
from workbench.config import Settings
from workbench.naming import ModelName, build_name, check_instance, check_version, format_data_date

_DEBUG_HINT = "run `%env WORKBENCH_DEBUG=1` and the magic again"


class _CellFailed(Exception):
    """The user's code in a ``%%mlops_track`` cell raised: not the magic's error to reword."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _one_line_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except UsageError:
            raise
        except _CellFailed as failed:
            raise failed.error from None
        except Exception as error:
            if debug_requested():
                raise  # IPython shows the whole traceback
            failure = describe(error, f"%{method.__name__}", settings=lambda: self.settings,
                               debug_hint=_DEBUG_HINT)
            raise UsageError(failure.message) from None

    wrapper.__name__, wrapper.__doc__ = method.__name__, method.__doc__
    wrapper.__wrapped__ = method  # type: ignore[attr-defined]
    return wrapper


@magics_class
class WorkbenchMagics(Magics):
    """The workbench magics; ``settings`` and ``registry`` are built on first use."""

    end_run_on_error = Bool(
        True, help="End the run %mlops_track started FAILED when a cell raises (otherwise it "
                   "stays RUNNING until the kernel stops).",
    ).tag(config=True)

    def __init__(self, shell: Any, settings: Settings | None = None, **kwargs: Any) -> None:
        super().__init__(shell, **kwargs)
        self._settings = settings
        self._registry: Any = None
        self._tracked: dict[str, str] = {}  # instance/version/data_date of the tracked run
        self._run_ids: set[str] = set()  # the runs %mlops_track started or resumed here

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    @property
    def registry(self) -> Any:
        if self._registry is None:
            from workbench.registry import Registry

            self._registry = Registry(self.settings)
        return self._registry

    # -- %mlops_track ------------------------------------------------------------------------
    @magic_arguments()
    @argument("--experiment", "-e", help="MLflow experiment (default: the instance)")
    @argument("--instance", "-i", help="model instance, a lowercase slug (e.g. churn)")
    @argument("--version", "-v", help="model version v<N>: algorithm + features + hyperparameters")
    @argument("--data-date", "-d", help="training data cut-off, YYYYMMDD")
    @argument("--data", help="training data file: its path, sha256 and rows are recorded")
    @argument("--notebook", help="this notebook's path (found automatically in JupyterLab and jobs)")
    @argument("--no-autolog", action="store_true", help="do not turn on MLflow autologging")
    @argument("--end", action="store_true", help="end the run (FINISHED)")
    @argument("--status", help="end the run with this status: FINISHED, FAILED or KILLED")
    @argument("--board", action="store_true",
              help="show the model board of the tracked instance (or of --instance)")
    @line_cell_magic
    @_one_line_errors
    def mlops_track(self, line: str, cell: str | None = None) -> Any:
        """Start or resume this notebook's MLflow run, with lineage and autologging.

        %mlops_track --instance churn --version v2 --data-date 20240131 --data data/jan.csv
        %mlops_track            (show the tracked run)
        %mlops_track --end      (or --status FAILED)
        %mlops_track --board    (compare and promote the tracked instance's models)
        %%mlops_track ...       (a run scoped to the cell; FAILED if the cell raises)
        """
        args = parse_argstring(self.mlops_track, line)
        if args.end or args.status:
            return self._end(args.status or "FINISHED")
        if args.board and cell is None and not any(
            (args.experiment, args.version, args.data_date, args.data)
        ):
            return self._board(args.instance)
        if cell is None and not any(
            (args.experiment, args.instance, args.version, args.data_date, args.data)
        ) and tracking.active_run() is not None:
            return self._show()
        self._start(args, scoped=cell is not None)
        if cell is None:
            return self._board(args.instance) if args.board else None
        return self._run_scoped_cell(cell)

    def _start(self, args: Any, scoped: bool) -> tracking.TrackedRun:
        tags, run_name = _naming_tags(args.instance, args.version, args.data_date)
        notebook = Path(args.notebook) if args.notebook else _notebook_path(self.shell)
        tracked = tracking.track(
            self.settings,
            experiment=args.experiment or args.instance,
            run_name=run_name,
            tags=tags,
            notebook=notebook,
            data=Path(args.data) if args.data else None,
            autolog=not args.no_autolog,
            scoped=scoped,
        )
        self._tracked = {k: v for k, v in zip(("instance", "version", "data_date"),
                                              (args.instance, args.version, args.data_date)) if v}
        self._run_ids.add(tracked.run_id)
        verb = "resumed" if tracked.resumed else "started"
        print(f"mlops_track: {verb} run {tracked.run_name or tracked.run_id} "
              f"in experiment '{tracked.experiment}': {tracked.url}")
        return tracked

    def _run_scoped_cell(self, cell: str) -> None:
        shell = self.shell
        if shell is None:
            raise UsageError("%%mlops_track needs an IPython shell to run the cell in")
        code = shell.transform_cell(cell)
        try:
            exec(compile(code, "<mlops_track cell>", "exec"), shell.user_ns)
        except BaseException as error:
            run_id = tracking.end_tracking("FAILED")
            print(f"mlops_track: run {run_id} FAILED")
            if isinstance(error, Exception):
                raise _CellFailed(error) from error
            raise
        run_id = tracking.end_tracking("FINISHED")
        print(f"mlops_track: run {run_id} FINISHED")

    def end_failed_run(self, result: Any) -> None:
        """``post_run_cell``: a cell raised while a run of ``%mlops_track`` is active, so
        end that run FAILED (e.g. ``%mlops_package`` refused the name); the next
        ``%mlops_track --instance ...`` starts a new one. A run of the user's own is left
        alone. Never raises: it runs after every cell."""
        if not self.end_run_on_error or result is None or result.success:
            return
        run = tracking.active_run()
        if run is None or run.info.run_id not in self._run_ids:
            return
        try:
            tracking.end_tracking("FAILED")
        except Exception as error:  # a down server must not break every later cell
            message = describe(error, "%mlops_track", settings=lambda: self.settings).message
            print(f"mlops_track: could not end run {run.info.run_id} FAILED: {message}")
            return
        print(f"mlops_track: the cell failed, run {run.info.run_id} ended FAILED; "
              "%mlops_track --instance ... starts a new run")

    def _end(self, status: str) -> None:
        run_id = tracking.end_tracking(status)
        if run_id is None:
            raise UsageError("no active run to end; start one with %mlops_track --instance ...")
        print(f"mlops_track: run {run_id} ended {status.upper()}")

    def _board(self, instance: str | None) -> Any:
        run = tracking.active_run()
        instance = (instance or self._tracked.get("instance")
                    or (run.data.tags.get(tracking.INSTANCE_TAG) if run is not None else None))
        if not instance:
            raise UsageError("no tracked instance to show: pass one, "
                             "%mlops_track --board --instance churn")
        client.require_server(self.settings)
        from workbench.widgets import ModelBoard  # ipywidgets only when a board is asked for

        return ModelBoard(instance, registry=self.registry)

    def _show(self) -> None:
        run = tracking.active_run()
        if run is None:
            raise UsageError("no active run; start one with %mlops_track --instance ...")
        print(f"mlops_track: active run {run.info.run_id} "
              f"({run.info.run_name}) in experiment {run.info.experiment_id}")

    # -- %mlops_package ----------------------------------------------------------------------
    @magic_arguments()
    @argument("variable", help="the variable holding the trained model")
    @argument("--name", "-n", help="full name, or instance_version with --data-date "
                                   "(default: what %%mlops_track was given)")
    @argument("--data-date", "-d", help="training data cut-off, YYYYMMDD")
    @argument("--input", help="variable holding an input frame, to infer the signature")
    @argument("--description", help="text for the model version")
    @argument("--image", action="store_true",
              help="also build its REST serving image (needs Docker)")
    @line_magic
    @_one_line_errors
    def mlops_package(self, line: str) -> Any:
        """Register the model held in a variable as a model instance, with its lineage.

        %mlops_package model --name churn_v2 --data-date 20240131 --input X_train
        %mlops_package model --image   (and build workbench-model/churn:v2_20240131)
        """
        args = parse_argstring(self.mlops_package, line)
        model = self._variable(args.variable, "model")
        frame = (_input_frame(model, self._variable(args.input, "input frame"), args.input)
                 if args.input else None)
        name = self._package_name(args.name, args.data_date)
        run = tracking.active_run()
        if run is None:
            raise UsageError(
                "no active run: call %mlops_track --instance ... first, so the model links to "
                "the run that trained it"
            )
        client.require_server(self.settings)
        instance = self.registry.register(
            model, name, run_id=run.info.run_id, input_example=frame, description=args.description
        )
        print(f"mlops_package: registered {instance.full_name} "
              f"(MLflow model '{instance.registered_model}' version {instance.number}): "
              f"{self.registry.ui_url(instance)}")
        if args.image:
            from workbench.packaging.model_image import package_model

            package_model(instance.uri, self.settings, registry=self.registry,
                          progress=lambda line: print(f"mlops_package: {line}"))
        return instance

    def _variable(self, name: str, what: str) -> Any:
        namespace = self.shell.user_ns if self.shell is not None else {}
        if name not in namespace:
            raise UsageError(f"no variable {name!r} holds the {what}; check the name")
        return namespace[name]

    def _package_name(self, name: str | None, data_date: str | None) -> ModelName:
        tracked = self._tracked
        if name is None:
            if not {"instance", "version"} <= set(tracked):
                raise UsageError(
                    "no --name given and %mlops_track named no instance and version; "
                    "pass --name churn_v2 --data-date 20240131"
                )
            name = f"{tracked['instance']}_{tracked['version']}"
        data_date = data_date or (tracked.get("data_date") if name.count("_") == 1 else None)
        return build_name(name, data_date=data_date)


def _input_frame(model: Any, value: Any, name: str) -> Any:
    """``--input`` as the DataFrame the registry needs.

    Serving, batch predictions and drift checks all match inputs by column name, so the
    signature must have names. A 2-D array is given the names the model was fitted with
    (scikit-learn's ``feature_names_in_``); without them no name would be right, and the
    user is asked for a DataFrame rather than given made-up ``f0, f1, ...`` columns that
    every client would then have to send.

    Raises:
        UsageError: ``value`` is not a DataFrame and cannot be made one with true names.
    """
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return value
    kind = type(value).__name__
    fix = f"pass a pandas DataFrame with named columns, e.g. pd.DataFrame({name}, columns=[...])"
    shape = getattr(value, "shape", None)
    if shape is None or len(shape) != 2:
        raise UsageError(f"--input {name} is a {kind}, not a table; {fix}")
    names = [str(n) for n in getattr(model, "feature_names_in_", [])]
    if not names:
        raise UsageError(f"--input {name} is a {kind} without column names and the model "
                         f"does not know its feature names; {fix}")
    if len(names) != shape[1]:
        raise UsageError(f"--input {name} has {shape[1]} columns but the model was fitted on "
                         f"{len(names)} ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}); "
                         "pass the training features")
    return pd.DataFrame(value, columns=names)


def _naming_tags(
    instance: str | None, version: str | None, data_date: str | None
) -> tuple[dict[str, str], str | None]:
    tags: dict[str, str] = {}
    if instance:
        tags[tracking.INSTANCE_TAG] = check_instance(instance)
    if version:
        tags[tracking.MODEL_VERSION_TAG] = check_version(version)
    if data_date:
        tags[tracking.DATA_DATE_TAG] = format_data_date(data_date)
    if instance and version and data_date:
        return tags, str(ModelName(instance, version, tags[tracking.DATA_DATE_TAG]))
    return tags, None


def _notebook_path(shell: Any) -> Path | None:
    """The running notebook: a job says it in WORKBENCH_NOTEBOOK; JupyterLab's kernel
    session carries it as ``__session__`` (ipykernel) or JPY_SESSION_NAME."""
    for candidate in (
        os.environ.get("WORKBENCH_NOTEBOOK"),
        shell.user_ns.get("__session__") if shell is not None else None,
        os.environ.get("JPY_SESSION_NAME"),
    ):
        if candidate and str(candidate).endswith(".ipynb") and Path(candidate).is_file():
            return Path(candidate)
    return None


def register(ipython: Any, settings: Settings | None = None) -> WorkbenchMagics:
    """Register the magics once per shell; a second call returns the registered instance
    (its tracked run and settings kept)."""
    registered = ipython.magics_manager.registry.get(WorkbenchMagics.__name__)
    if isinstance(registered, WorkbenchMagics) and settings is None:
        return registered
    if isinstance(registered, WorkbenchMagics):
        ipython.events.unregister("post_run_cell", registered.end_failed_run)
    magics = WorkbenchMagics(ipython, settings, parent=ipython)
    ipython.register_magics(magics)
    ipython.events.register("post_run_cell", magics.end_failed_run)
    return magics
