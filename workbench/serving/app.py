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
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from workbench.errors import WorkbenchError
from workbench.serving.batching import Batcher
from workbench.serving.follow import AliasFollower
from workbench.serving.guard import Guard
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
from workbench.serving.shadow import ShadowScorer

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
        "401": {"description": "The server has a token and the request lacks it"},
        "403": {"description": "Host or Origin is not an allowed host"},
        "413": {"description": "Body or batch over the limit"},
        "415": {"description": "Content type other than application/json or text/csv"},
        "500": {"description": "The model failed; the message carries the request id"},
        "504": {"description": "No prediction within --timeout-ms; the message carries the request id"},
    },
}


# Bodies up to this size are parsed on the event loop (microseconds); larger ones on a thread,
# so a 10 MiB CSV does not hold up /health and the other requests' reads.
INLINE_PARSE_BYTES = 64 * 1024
# An oversized body is read and thrown away up to this many bytes before the 413, so clients
# that send the whole body before reading (urllib, requests) see the 413, not a reset.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024


class ServingApp:
    """ASGI entry point.

    Args:
        scorer: prepares and scores requests.
        batcher: merges waiting requests into one ``predict`` call.
        guard: the Host/Origin/token checks every request passes first.
        api: the FastAPI app for everything but ``POST /invocations``.
    """

    def __init__(self, scorer: Scorer, batcher: Batcher, guard: Guard, api: Any) -> None:
        self.scorer = scorer
        self.batcher = batcher
        self.guard = guard
        self.api = api
        self.max_body = scorer.limits.max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refusal = self.guard.check(scope["path"], scope["headers"])
            if refusal is not None:
                await _send(send, refusal.status, orjson.dumps(
                    {"error_code": refusal.error_code, "message": refusal.message}),
                    [(b"www-authenticate", b"Bearer")] if refusal.status == 401 else [])
                return
            if scope["path"] == "/invocations" and scope["method"] == "POST":
                await self._invocations(scope, receive, send)
                return
        await self.api(scope, receive, send)

    async def _invocations(self, scope: dict, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        content_type = request_id = length = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"x-request-id":
                request_id = value if _REQUEST_ID.fullmatch(value) else None
            elif name == b"content-length":
                length = value
        rid = request_id.decode() if request_id else uuid.uuid4().hex
        declared = int(length) if length is not None and length.isdigit() else None
        body = None
        if declared is None or declared <= self.max_body:
            body = await self._read_body(receive)
        if body is None:
            if declared is None or declared <= DRAIN_LIMIT_BYTES:
                await _drain(receive)
            await _send(send, 413, self._too_large().body,
                        [(b"x-request-id", rid.encode()), (b"connection", b"close")])
            return
        if len(body) <= INLINE_PARSE_BYTES:
            prepared = self.scorer.prepare(body, content_type, rid, started)
        else:
            prepared = await asyncio.get_running_loop().run_in_executor(
                None, self.scorer.prepare, body, content_type, rid, started)
        reply = prepared if isinstance(prepared, Reply) else await self.batcher.submit(prepared)
        headers = [(b"x-request-id", rid.encode())]
        if reply.model_name:
            headers.append((b"x-model-name", reply.model_name.encode("utf-8", "replace")))
        await _send(send, reply.status, reply.body, headers)

    async def _read_body(self, receive: Any) -> bytes | None:
        """The body, or None once it passes the limit (the rest is left for ``_drain``)."""
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


async def _drain(receive: Any) -> None:
    """Read and drop the rest of a body, up to ``DRAIN_LIMIT_BYTES``."""
    size = 0
    while size <= DRAIN_LIMIT_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _send(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [*_JSON, *headers]})
    await send({"type": "http.response.body", "body": body})


def create_app(model: ServedModel, *, limits: Limits | None = None,
               prediction_log: Any = None, options: ServeOptions | None = None,
               shadow: ServedModel | None = None, settings: Any = None) -> ServingApp:
    """The ASGI app serving ``model``; ``prediction_log`` is started here and closed on shutdown.

    Args:
        options: batching, timeout, allowed hosts, token, ``follow``/``shadow_follow`` and
            their poll interval (defaults when None).
        shadow: a challenger scored beside ``model``, off the response path.
        settings: where the registry is (needed by ``follow`` and ``shadow_follow``).
    """
    options = options or ServeOptions()
    metrics = ServingMetrics(prediction_log.stats if prediction_log is not None else None)
    scorer = Scorer(model, limits or options.limits, prediction_log, metrics)
    batcher = Batcher(scorer, max_rows=options.max_batch_rows,
                      max_wait_ms=options.max_batch_wait_ms, timeout_ms=options.timeout_ms or None)
    guard = Guard(options.allowed_hosts, options.token)
    shadow_scorer = ShadowScorer(shadow, prediction_log, metrics) if shadow is not None else None
    followers = []

    def refused(reason: str) -> None:
        metrics.swaps_refused.labels(reason=reason).inc()

    def swapped(new: ServedModel) -> None:
        scorer.swap(new)
        metrics.swaps.inc()

    @asynccontextmanager
    async def lifespan(_: Any):
        if prediction_log is not None:
            prediction_log.start()
        scorer.warm_up()
        if shadow_scorer is not None:
            shadow_scorer.start()
            scorer.listeners.append(shadow_scorer.offer)
        if options.follow:
            followers.append(AliasFollower(options.follow, settings, model, swapped, refused,
                                           poll_s=options.poll_s))
        if shadow_scorer is not None and options.shadow_follow:
            followers.append(AliasFollower(options.shadow_follow, settings, shadow_scorer.model,
                                           shadow_scorer.swap, refused, poll_s=options.poll_s,
                                           what="shadow"))
        # Everything loaded so far (MLflow, pandas, the model) lives as long as the process:
        # freezing it keeps full garbage collections, which the prediction log's queued
        # records trigger, from scanning millions of objects in the middle of a request.
        gc.freeze()
        for follower in followers:
            follower.start()
        yield
        for follower in followers:
            follower.stop()
        # Uvicorn has drained in-flight requests by now (SIGTERM); score what the shadow
        # still holds, then write what every request logged.
        if shadow_scorer is not None:
            shadow_scorer.close()
        batcher.shutdown()
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

    @api.get("/ready", summary="The model is loaded, warmed up and not stuck in a prediction")
    async def ready() -> JSONResponse:
        if batcher.stuck:
            return JSONResponse({"ready": False, "reason": "a prediction is running over "
                                 "--timeout-ms"}, status_code=503)
        if scorer.ready:
            return JSONResponse({"ready": True, "model": scorer.model.name})
        return JSONResponse({"ready": False}, status_code=503)

    @api.get("/metadata", summary="Model name, instance, version, data date, run, signature")
    async def metadata() -> dict:
        served = scorer.model
        return {**served.metadata.as_dict(), "signature": served.signature_json(),
                **({"shadow": shadow_scorer.model.metadata.as_dict()} if shadow_scorer else {})}

    @api.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    _document_invocations(api)
    return ServingApp(scorer, batcher, guard, api)


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

    settings = Settings.from_env() if (options.model or options.shadow) else None
    if options.model_dir:
        meta = options.metadata
        model = ServedModel.from_directory(Path(options.model_dir), ModelMetadata(
            **{k: meta.get(k) for k in ModelMetadata.__dataclass_fields__ if k != "source"},
            source=meta.get("source") or options.model_dir))
    elif options.model:
        model = ServedModel.from_registry(options.model, settings)
    else:
        raise WorkbenchError(f"set {ENV_MODEL} (a models:/ URI) or {ENV_MODEL_DIR} (a folder "
                             "in MLflow format), or start the server with `workbench serve`")
    prediction_log = None
    if options.log_url:
        from workbench.store.writer import PredictionLog

        prediction_log = PredictionLog(
            options.log_url, batch_size=options.log_batch_size,
            flush_interval=options.log_flush_interval, max_backlog=options.log_max_backlog,
            id_column=options.log_id_column or None)
    shadow = ServedModel.from_registry(options.shadow, settings) if options.shadow else None
    why = model.incompatibility(shadow) if shadow is not None else None
    if why is not None and shadow is not None:
        raise WorkbenchError(f"the shadow {shadow.name} cannot take the requests {model.name} "
                             f"takes ({why}); shadow an instance with the same signature")
    return create_app(model, prediction_log=prediction_log, options=options, shadow=shadow,
                      settings=settings)
