"""Prometheus metrics and the request log, both recorded by one ASGI middleware."""

from __future__ import annotations

import logging
import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.routing import Match

REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests served, by method, route pattern and status code.",
    ["method", "route", "status"],
)
DURATION = Histogram(
    "http_request_duration_seconds",
    "Time spent serving HTTP requests, by method and route pattern.",
    ["method", "route"],
)

# Label values stay bounded: unknown methods and paths are folded into one value each.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
# Successful probes and scrapes are logged at debug level so they do not drown the log.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})

log = logging.getLogger("app.http")


def exposition() -> tuple[bytes, str]:
    """The current metrics in the Prometheus text format, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST


def route_of(scope: dict) -> str:
    """The path pattern ("/api/items/{id}") of the route that serves scope, never the raw path."""
    app = scope.get("app")
    for route in getattr(getattr(app, "router", None), "routes", ()):
        match, _ = route.matches(scope)
        if match != Match.NONE:  # FULL, or PARTIAL when only the method differs (405)
            return getattr(route, "path", UNMATCHED)
    return UNMATCHED


class Instrumentation:
    """ASGI middleware: counts and times every HTTP request and writes one log line for it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets when the app raises before responding

        async def send_and_record_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record_status)
        finally:
            elapsed = time.perf_counter() - start
            method = scope["method"] if scope["method"] in METHODS else "OTHER"
            route = route_of(scope)
            REQUESTS.labels(method, route, str(status)).inc()
            DURATION.labels(method, route).observe(elapsed)
            level = logging.DEBUG if route in QUIET_ROUTES and status < 400 else logging.INFO
            log.log(level, "request", extra={"fields": {
                "method": scope["method"],
                "path": scope["path"],
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
            }})
