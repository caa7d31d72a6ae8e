"""A data scientist's own project: ``workbench new`` renders it from a copier template,
``workbench template update`` brings it to the template's newest version.

- :mod:`workbench.project.infer`: the task, feature columns and primary metric, from a data file;
- :mod:`workbench.project.render`: the template repository, copier, git;
- ``template/``: the copier template (``copier.yml``, the project under ``project/``).
"""
from __future__ import annotations

from workbench.project.infer import ColumnPlan, infer_plan, read_table
from workbench.project.render import (
    NewProject,
    TemplateUpdate,
    new_project,
    publish_template,
    update_project,
)

__all__ = ["ColumnPlan", "NewProject", "TemplateUpdate", "infer_plan", "new_project",
           "publish_template", "read_table", "update_project"]
