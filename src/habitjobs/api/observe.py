"""The API's outermost middleware: a request id for every request (the caller's ``X-Request-ID`` when
usable, echoed in the answer), the request's metrics by route template and status, and one log line per
request that failed on the server's side.

A pure ASGI middleware: the context variables it sets are seen by the routes, and by the jobs they start
(:func:`habitjobs.observability.context.with_request_id`)."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from habitjobs.observability import context, tracing
from habitjobs.observability import metrics as m

log = logging.getLogger("habitjobs.api.access")

_HEADER = context.HEADER.encode()


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else "unmatched"


class RequestObserver:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope.get("headers", ()):
            if name == _HEADER:
                given = value.decode("latin-1")
                break
        rid = context.accept_request_id(given)
        token = context.request_id.set(rid)
        rid_header = (_HEADER, rid.encode())
        status = 500
        started = time.perf_counter()
        enabled = m.ENABLED
        if enabled:
            m.HTTP_IN_FLIGHT.inc()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", []), rid_header]}
            await send(message)

        try:
            if tracing.ENABLED:
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
                with tracing.span(
                    f"{scope['method']} {scope['path']}", kind="SERVER", parent=headers
                ) as current:
                    await self.app(scope, receive, send_with_id)
                    current.set_attribute("http.route", _route_of(scope))
                    current.set_attribute("http.response.status_code", status)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            if enabled:
                m.HTTP_IN_FLIGHT.dec()
                route = _route_of(scope)
                method = scope["method"]
                code = str(status)
                m.child(m.HTTP_REQUESTS, method, route, code).inc()
                m.child(m.HTTP_DURATION, method, route, code).observe(time.perf_counter() - started)
                if status in (429, 503):
                    m.child(m.HTTP_REJECTED, route, code).inc()
            if status >= 500 or log.isEnabledFor(logging.DEBUG):
                state = scope.get("state") or {}
                user = state.get("user_id")
                log.log(
                    logging.WARNING if status >= 500 else logging.DEBUG,
                    "%s %s -> %d in %.1f ms",
                    scope["method"],
                    _route_of(scope),
                    status,
                    (time.perf_counter() - started) * 1000,
                    extra={"user_id": str(user) if user else None},
                )
            context.request_id.reset(token)
