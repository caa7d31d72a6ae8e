"""Container images: the workbench's own (``images``), model images (``model_image``), and
the host-built wheelhouses both install from (``wheelhouse``). Dockerfiles are rendered by
pure functions (``dockerfile``) and built through ``workbench._docker``."""
