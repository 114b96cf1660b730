"""The HTTP API: health, readiness, metrics and /api/items."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from . import metrics
from .store import Unavailable

log = logging.getLogger("app.api")

MAX_NAME = 200
MAX_LIST = 100
MAX_ID = 2**63 - 1  # ids are BIGINT
ID_PATTERN = re.compile(r"[0-9]{1,19}")
PHRASES = {s.value: s.phrase for s in HTTPStatus}


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(store, cache) -> FastAPI:
    """The application, serving items from store through cache (see app.store)."""
    app = FastAPI(title="backend", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(metrics.Instrumentation)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Starlette's own errors (404, 405) carry the status phrase: lower-case it like ours.
        detail = str(exc.detail)
        message = detail.lower() if detail == PHRASES.get(exc.status_code) else detail
        return error(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error(400, f"{where}: {first.get('msg')}" if where else str(first.get("msg")))

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Unavailable) -> JSONResponse:
        log.warning("database unavailable", extra={"fields": {"error": str(exc)}})
        return error(503, "database unavailable")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # The server logs the traceback; the client learns nothing about internals.
        return error(500, "internal error")

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        checks: dict[str, str] = {}
        for name, ping in [("db", store.ping), ("cache", cache.ping)]:
            try:
                ping()
                checks[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                checks[name] = str(exc) or type(exc).__name__
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, headers={"Content-Type": content_type})

    @app.post("/api/items", status_code=201)
    def create_item(body: Any = Body(None)) -> JSONResponse:
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
            return error(400, f"name must be a string of 1 to {MAX_NAME} characters")
        return JSONResponse(store.create_item(name), status_code=201)

    @app.get("/api/items")
    def list_items() -> JSONResponse:
        return JSONResponse(store.list_items(MAX_LIST))

    @app.get("/api/items/{id}")
    def get_item(request: Request) -> JSONResponse:
        raw_id = request.path_params["id"]
        key = int(raw_id) if ID_PATTERN.fullmatch(raw_id) else 0
        if not 1 <= key <= MAX_ID:
            return error(404, "not found")
        item = cache.get_item(key)
        if item is not None:
            return JSONResponse(item, headers={"X-Cache": "hit"})
        item = store.get_item(key)
        if item is None:
            return error(404, "not found", {"X-Cache": "miss"})
        cache.set_item(item)
        return JSONResponse(item, headers={"X-Cache": "miss"})

    return app
