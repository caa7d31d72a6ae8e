"""REST serving: the MLflow scoring protocol, strict validation, prediction logging.

One module per part: ``protocol`` (bytes -> validated columns), ``model`` (the loaded model's
fast predict), ``scorer`` (prepare and score requests, log, count), ``batching`` (merge what
waits while the model is busy), ``guard`` (Host/Origin/token), ``follow`` (alias swaps),
``shadow`` (a challenger off the response path), ``app`` (the ASGI app), ``server`` (``workbench
serve``: check, pin, run uvicorn), ``options`` (the server's environment), ``metrics``.

Kept free of the notebook side (no IPython, ipywidgets or click) because the same server
runs inside the lean serving images.
"""
