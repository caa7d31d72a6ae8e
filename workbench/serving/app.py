"""The serving ASGI app: ``POST /invocations`` on a lean path, the rest through FastAPI.

FastAPI gives the small endpoints and the OpenAPI docs; scoring requests skip its routing
and request parsing (a measurable share of a sub-millisecond request) and go straight to
the framework-free ``Scorer``. FastAPI never sees ``POST /invocations``, so it has no route
for it: the OpenAPI document describes the lean path by hand.
"""
from __future__ import annotations

import asyncio
import gc
import re
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from workbench.errors import WorkbenchError
from workbench.serving.metrics import ServingMetrics
from workbench.serving.model import ModelMetadata, ServedModel
from workbench.serving.options import (  # noqa: F401  (the names serve and images use)
    ENV_LOG_MAX_BACKLOG,
    ENV_LOG_URL,
    ENV_MAX_BODY,
    ENV_MAX_ROWS,
    ENV_METADATA,
    ENV_MODEL,
    ENV_MODEL_DIR,
    ServeOptions,
)
from workbench.serving.protocol import Limits, RequestError
from workbench.serving.scorer import Reply, Scorer, error_reply

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
_JSON = [(b"content-type", b"application/json")]

_INVOCATIONS_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object", "description":
                "One of {\"dataframe_split\": {\"columns\": [...], \"data\": [[...]]}}, "
                "{\"dataframe_records\": [{...}]}, {\"instances\": [{...}]}, {\"inputs\": {...}}"}},
            "text/csv": {"schema": {"type": "string", "description": "CSV with a header row"}},
        },
    },
    "responses": {
        "200": {"description": "{\"predictions\": [...]}"},
        "400": {"description": "Bad input: {\"error_code\", \"message\"} naming the field"},
        "413": {"description": "Body or batch over the limit"},
        "415": {"description": "Content type other than application/json or text/csv"},
        "500": {"description": "The model failed; the message carries the request id"},
    },
}


class ServingApp:
    """ASGI entry point. Args: scorer: does the work; api: the FastAPI app for the rest."""

    def __init__(self, scorer: Scorer, api: Any) -> None:
        self.scorer = scorer
        self.api = api
        self.max_body = scorer.limits.max_body_bytes
        # Scoring runs on one thread beside the event loop: the loop keeps reading requests
        # while the model works, so a SIGTERM finds them in flight and uvicorn drains them,
        # and /health answers during a slow prediction. One thread, since the GIL serialises
        # the CPU work anyway.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/invocations" and scope["method"] == "POST":
            await self._invocations(scope, receive, send)
        else:
            await self.api(scope, receive, send)

    async def _invocations(self, scope: dict, receive: Any, send: Any) -> None:
        content_type = request_id = length = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"x-request-id":
                request_id = value if _REQUEST_ID.fullmatch(value) else None
            elif name == b"content-length":
                length = value
        rid = request_id.decode() if request_id else uuid.uuid4().hex
        if length is not None and length.isdigit() and int(length) > self.max_body:
            reply = self._too_large()
        else:
            body = await self._read_body(receive)
            reply = self._too_large() if body is None else await asyncio.get_running_loop().run_in_executor(
                self._executor, self.scorer.invoke, body, content_type, rid)
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": [*_JSON, (b"x-request-id", rid.encode())]})
        await send({"type": "http.response.body", "body": reply.body})

    async def _read_body(self, receive: Any) -> bytes | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self) -> Reply:
        reply = error_reply(RequestError(
            413, "REQUEST_LIMIT_EXCEEDED", f"the body is over the limit of {self.max_body} bytes"))
        self.scorer.metrics.observe(413, 0.0)
        return reply


def create_app(model: ServedModel, *, limits: Limits | None = None,
               prediction_log: Any = None) -> ServingApp:
    """The ASGI app serving ``model``; ``prediction_log`` is started here and closed on shutdown."""
    metrics = ServingMetrics(prediction_log.stats if prediction_log is not None else None)
    scorer = Scorer(model, limits or Limits(), prediction_log, metrics)

    @asynccontextmanager
    async def lifespan(_: Any):
        if prediction_log is not None:
            prediction_log.start()
        scorer.warm_up()
        # Everything loaded so far (MLflow, pandas, the model) lives as long as the process:
        # freezing it keeps full garbage collections, which the prediction log's queued
        # records trigger, from scanning millions of objects in the middle of a request.
        gc.freeze()
        yield
        # Uvicorn has drained in-flight requests by now (SIGTERM); write what they logged.
        if prediction_log is not None:
            prediction_log.close(timeout=30)

    api = FastAPI(title=f"workbench serve: {model.name}", version="1", lifespan=lifespan,
                  description="MLflow-compatible scoring server for one model instance.")

    def error(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse({"error_code": code, "message": message}, status_code=status)

    @api.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
        return error(exc.status_code, codes.get(exc.status_code, "BAD_REQUEST"), str(exc.detail))

    @api.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error(400, "BAD_REQUEST", "invalid request")

    @api.get("/health", summary="The process is alive")
    async def health() -> dict:
        return {"status": "ok"}

    @api.get("/ready", summary="The model is loaded and warmed up")
    async def ready() -> JSONResponse:
        if scorer.ready:
            return JSONResponse({"ready": True, "model": model.name})
        return JSONResponse({"ready": False}, status_code=503)

    @api.get("/metadata", summary="Model name, instance, version, data date, run, signature")
    async def metadata() -> dict:
        return {**model.metadata.as_dict(), "signature": model.signature_json()}

    @api.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    _document_invocations(api)
    return ServingApp(scorer, api)


def _document_invocations(api: Any) -> None:
    """Describe the lean ``POST /invocations`` in FastAPI's OpenAPI document."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(title=api.title, version=api.version,
                                 description=api.description, routes=api.routes)
            schema.setdefault("paths", {})["/invocations"] = {"post": {
                "summary": "Score rows (MLflow scoring protocol)",
                "operationId": "invocations", **_INVOCATIONS_DOC}}
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi


def app_from_env() -> ServingApp:
    """Uvicorn factory: build the app from ``WORKBENCH_SERVE_*`` variables (one per worker).

    A malformed variable is one line on stderr and exit status 1, not a traceback per worker
    (``workbench serve`` checks them before starting workers, a model image may not).
    """
    try:
        return _app_from_options(ServeOptions.from_env())
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def _app_from_options(options: ServeOptions) -> ServingApp:
    from workbench.config import Settings

    if options.model_dir:
        meta = options.metadata
        model = ServedModel.from_directory(Path(options.model_dir), ModelMetadata(
            **{k: meta.get(k) for k in ModelMetadata.__dataclass_fields__ if k != "source"},
            source=meta.get("source") or options.model_dir))
    elif options.model:
        model = ServedModel.from_registry(options.model, Settings.from_env())
    else:
        raise WorkbenchError(f"set {ENV_MODEL} (a models:/ URI) or {ENV_MODEL_DIR} (a folder "
                             "in MLflow format), or start the server with `workbench serve`")
    prediction_log = None
    if options.log_url:
        from workbench.store.writer import PredictionLog

        prediction_log = PredictionLog(
            options.log_url, batch_size=options.log_batch_size,
            flush_interval=options.log_flush_interval, max_backlog=options.log_max_backlog)
    return create_app(model, limits=options.limits, prediction_log=prediction_log)
