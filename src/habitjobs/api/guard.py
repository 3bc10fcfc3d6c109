"""Answers when a store does not: 503 with ``Retry-After``, on time, on a connection that stays usable.

A pure ASGI middleware around the whole app:

- A request that fails because PostgreSQL or Redis is unreachable or did not answer within its time
  limit (:func:`habitjobs.outage.is_store_outage`) is answered ``503 {"error": {"code": "unavailable"}}``
  with ``Retry-After``. The exception stops here: nothing is re-raised to the server, so no traceback is
  logged for it and the keep-alive connection serves the client's next request. The outage is logged
  once per episode (:class:`habitjobs.outage.OutageLog`), not once per request.
- A request that has not started its answer ``deadline_s`` after it arrived is answered the same way
  at once, whatever it is waiting for; it is cancelled and its clean-up (a rollback on a silent
  connection, say) finishes in the background without holding the client. The per-call limits of the
  store clients normally fail a stalled call well before; the deadline is what makes the bound hard.
  Operators' routes (``/admin/``) have no deadline — retrying every failed job of a big queue takes
  longer, and stopping it half-way helps nobody — but their store calls keep their own limits.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from habitjobs.api.errors import error_body
from habitjobs.outage import OutageLog, is_store_outage

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
_BODY = json.dumps(error_body("unavailable", "a backing service is unavailable; retry shortly")).encode()


class StoreGuard:
    def __init__(
        self, app: ASGIApp, *, deadline_s: float, no_deadline: tuple[str, ...] = ("/admin/",)
    ) -> None:
        self.app = app
        self.deadline_s = deadline_s
        self.no_deadline = no_deadline
        self.outages = OutageLog(log, "API")
        # Requests past their deadline, still cleaning up after their cancellation.
        self._abandoned: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0
        answered_here = False

        async def guarded_send(message: Message) -> None:
            nonlocal status
            if answered_here:  # this request ran past its deadline and was answered already
                return
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        task: asyncio.Task[None] = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        deadline = None if str(scope.get("path", "")).startswith(self.no_deadline) else self.deadline_s
        try:
            done, _ = await asyncio.wait({task}, timeout=deadline)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            if status:  # the answer has started (a streamed body): let it finish
                await task
                return
            answered_here = True
            task.cancel()
            self._abandoned.add(task)
            task.add_done_callback(self._forget)
            self.outages.failed(
                TimeoutError(f"no answer within the request deadline of {self.deadline_s:g} s")
            )
            await _unavailable(send)
            return
        if task.cancelled():
            raise asyncio.CancelledError
        exc = task.exception()
        if exc is None:
            if status < 500:
                self.outages.recovered()
            return
        if is_store_outage(exc) and not status:
            self.outages.failed(exc)
            await _unavailable(send)
            return
        raise exc

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("a request abandoned at its deadline ended with %r", task.exception())


async def _unavailable(send: Send) -> None:
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_BODY)).encode()),
        (b"retry-after", str(RETRY_AFTER_S).encode()),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": _BODY})
