"""Prometheus metrics: the families every process exposes at GET /metrics.

Dashboards and alerts are written against these names; change them only with a note in the
README. Labels never hold a user id, a task's text or a raw path (the route is the path
template), so their number stays small whatever the traffic.

The counters live in this module's registry, one per process, as Prometheus expects: each
replica and each worker is scraped on its own, and sums are taken in PromQL. The gauges that
describe the app (open streams, pool connections, the webhook backlog) are read at the scrape.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from sqlalchemy import func, select
from starlette.routing import Mount

from server.errors import database_unavailable
from server.http import error_response
from server.models import Event, utcnow

log = logging.getLogger("todo_chat.metrics")
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

HTTP_REQUESTS = Counter(
    "todochat_http_requests",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_DURATION = Histogram(
    "todochat_http_request_duration_seconds",
    "Time to answer an HTTP request (an event stream: how long it was open)",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
HTTP_IN_FLIGHT = Gauge(
    "todochat_http_requests_in_flight", "HTTP requests being answered now", registry=REGISTRY
)
MCP_TOOL_CALLS = Counter(
    "todochat_mcp_tool_calls",
    "MCP tool calls (over HTTP, stdio and from the chat agent), by tool and outcome (ok, error)",
    ["tool", "outcome"],
    registry=REGISTRY,
)
CHAT_TURNS = Counter(
    "todochat_chat_turns",
    "Chat turns, by outcome (ok, stopped, timeout, model_error, unavailable, cancelled, error)",
    ["outcome"],
    registry=REGISTRY,
)
MODEL_DURATION = Histogram(
    "todochat_model_request_duration_seconds",
    "Time of one request to the model (a turn makes one per step)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60),
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "todochat_rate_limited",
    "Requests refused by a rate limit, by scope (chat, rest, mcp, anonymous)",
    ["scope"],
    registry=REGISTRY,
)
EVENT_STREAMS_OPEN = Gauge(
    "todochat_event_streams_open", "Open GET /api/events streams", registry=REGISTRY
)
EVENTS_UNDELIVERED = Gauge(
    "todochat_events_undelivered",
    "Events not yet delivered to the webhook (0 without a webhook)",
    registry=REGISTRY,
)
EVENTS_OLDEST_UNDELIVERED = Gauge(
    "todochat_events_oldest_undelivered_age_seconds",
    "Age of the oldest event not yet delivered to the webhook (0 when none)",
    registry=REGISTRY,
)
REMINDERS_SENT = Counter(
    "todochat_reminders_sent",
    "Reminders sent, by whether they were late (sent after the server was down)",
    ["late"],
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "todochat_webhook_deliveries",
    "Webhook deliveries, by outcome (ok, failed)",
    ["outcome"],
    registry=REGISTRY,
)
DB_POOL = Gauge(
    "todochat_db_pool_connections",
    "Database connections of this process, by state (in_use, idle, max)",
    ["state"],
    registry=REGISTRY,
)

_events = Event.__table__  # type: ignore[attr-defined]
_BACKLOG = select(
    func.count().label("undelivered"), func.min(_events.c.created_at).label("oldest")
).where(_events.c.delivered_at.is_(None))


async def _read_app_gauges(app: FastAPI) -> None:
    state = app.state
    hub = getattr(state, "events", None)  # the worker has no event streams
    if hub is not None:
        EVENT_STREAMS_OPEN.set(hub.open_streams)
    for name, value in state.db.pool_connections().items():
        DB_POOL.labels(name).set(value)
    if not state.settings.events_webhook_url:
        return
    try:
        row = (await state.db.rows(_BACKLOG, {}))[0]
    except Exception as exc:
        # A scrape goes on without the database (shutting down, an outage): the gauges keep
        # their last values, and the counters are still worth having.
        if not database_unavailable(exc):
            raise
        log.debug("metrics: backlog not read: %r", exc)
        return
    EVENTS_UNDELIVERED.set(row["undelivered"])
    oldest = row["oldest"]
    EVENTS_OLDEST_UNDELIVERED.set((utcnow() - oldest).total_seconds() if oldest else 0)


def install(app: FastAPI) -> None:
    token = app.state.settings.metrics_token

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if token:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return error_response(
                    401,
                    "unauthorized",
                    "the metrics need the bearer token set as METRICS_TOKEN",
                    {"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        await _read_app_gauges(request.app)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(seconds)


def route_of(scope: MutableMapping[str, Any]) -> str:
    """The path template that answered, e.g. /api/{user_id}/tasks/{task_id}: never the raw
    path, whose ids would make a series each.

    The route that answered knows its own template, relative to the routers it was included
    in (one route serves both /api/tasks and /api/{user_id}/tasks): the segments before it
    are the prefix, where a path parameter's value is put back as its name.
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return "unmatched"
    if isinstance(route, Mount):
        return f"{template}/{{path}}"
    tail = [part for part in template.split("/") if part]
    segments = [part for part in scope["path"].split("/") if part]
    names = {str(value): name for name, value in scope.get("path_params", {}).items()}
    prefix = [
        f"{{{names[part]}}}" if part in names else part
        for part in segments[: max(len(segments) - len(tail), 0)]
    ]
    return "/" + "/".join(prefix + tail)
