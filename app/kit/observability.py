"""Request ids, structured request logs and Prometheus metrics.

Logs never carry a query string, a body, a token or a phone number: only the route template,
method, status, duration and request id.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.kit.headers import secure

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "http_requests_total", "HTTP requests by route and status", ["method", "route", "status"], registry=REGISTRY
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by route",
    ["method", "route"],
    registry=REGISTRY,
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

log = logging.getLogger("app.request")

# The metric children per (method, route template, status): a bounded set, looked up once each.
_series: dict[tuple[str, str, str], tuple] = {}


def _observe(method: str, route: str, status: str, elapsed: float) -> None:
    key = (method, route, status)
    series = _series.get(key)
    if series is None:
        series = _series[key] = (REQUESTS.labels(method, route, status), LATENCY.labels(method, route))
    series[0].inc()
    series[1].observe(elapsed)


_encode = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps with an option builds an encoder per call


class JsonFormatter(logging.Formatter):
    FIELDS = ("request_id", "method", "route", "status", "duration_ms", "user_id")

    _second, _stamp = -1, ""

    def stamp(self, created: float) -> str:
        """The record's local time to the second, formatted once per second (a line per request)."""
        second = int(created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(created))
        return self._stamp

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": self.stamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for f in self.FIELDS:
            v = getattr(record, f, None)
            if v is not None:
                data[f] = v
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return _encode(data)


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger("app")
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    # The JSON lines carry none of the caller, thread or process fields, and gathering them was a
    # tenth of the bin-side scan's CPU (a log line per request): off, as the logging HOWTO's
    # "Optimization" section describes.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path or "unmatched"


class RequestContextMiddleware:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = 2 * 1024 * 1024):
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for k, v in scope.get("headers", ()):
            if k == b"x-request-id":
                incoming = v.decode("latin-1")[:64]
                break
        request_id = incoming if incoming and incoming.isprintable() else os.urandom(16).hex()  # 32 random hex digits, a fifth of uuid4().hex's cost
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status_holder = {"status": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = message.setdefault("headers", [])
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                secure(headers)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = _route_template(scope)
            method = scope.get("method", "")
            if route not in ("/metrics", "/healthz"):
                _observe(method, route, str(status_holder["status"]), elapsed)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "request_id": request_id,
                        "method": method,
                        "route": route,
                        "status": status_holder["status"],
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )


def metrics_payload() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
