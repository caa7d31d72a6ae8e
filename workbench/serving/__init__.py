"""REST serving: the MLflow scoring protocol, strict validation, prediction logging.

Kept free of the notebook side (no IPython, ipywidgets or click) because the same server
runs inside the lean serving images.
"""
