"""Notebook widgets over the workbench library (the only package that imports ipywidgets).

``ModelBoard(instance)`` lists, compares and promotes the instances of a registered model;
``RunBrowser(experiment)`` lists the runs of an experiment. Both take a ``Registry`` (or
``Settings``) and go through the library only, never to MLflow's store directly.
"""
from __future__ import annotations

from workbench.widgets.board import ModelBoard
from workbench.widgets.runs import RunBrowser

__all__ = ["ModelBoard", "RunBrowser"]
