"""Serving the API with uvicorn, guarded against slow and broken clients.

uvicorn closes idle keep-alive connections but has no limit on how long a request may take to arrive:
a client that sends half a header block, half a body, or a chunked body that stops, holds its
connection (and, for the body, the request's task) forever. :func:`guarded_protocol` makes uvicorn's
HTTP protocol (httptools) enforce three limits per API process:

- **headers**: the request line and headers must be complete within ``api_header_timeout_s`` of the
  connection opening, or of the first byte of a later request on a kept-alive connection;
- **body**: the body must be complete within ``api_body_timeout_s`` of the end of the headers;
- **connections per client IP**: at most ``api_max_connections_per_ip`` at once (0: no cap).

A request over a time limit is answered ``408`` with the project's error body (``request_timeout``) and
the connection is closed; when its answer has already begun, the connection is just closed. A
connection over the per-IP cap is answered ``429`` (``too_many_connections``) and closed at once. These
checks run before any token check, at the connection level.

The subclass hooks uvicorn's parser callbacks and reads its request cycle's flags, so uvicorn is pinned
exactly; ``tests/integration/test_slow_clients.py`` checks the behaviour with real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from habitjobs.config import Settings

log = logging.getLogger(__name__)

# A refused or timed-out connection is logged at most this often (with how many since the last line).
_LOG_EVERY_S = 60.0


def _raw_response(status: int, reason: str, code: str, message: str, extra: str = "") -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}connection: close\r\n\r\n"
    )
    return head.encode() + body


class _ThrottledLog:
    def __init__(self) -> None:
        self._last = 0.0
        self._counts: Counter[str] = Counter()

    def note(self, what: str) -> None:
        self._counts[what] += 1
        now = time.monotonic()
        if now - self._last >= _LOG_EVERY_S:
            log.warning(
                "slow or greedy clients: %s",
                ", ".join(f"{n} {kind}" for kind, n in sorted(self._counts.items())),
            )
            self._counts.clear()
            self._last = now


def guarded_protocol(settings: Settings) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with the limits of ``settings`` (one class per server)."""
    header_timeout_s = settings.api_header_timeout_s
    body_timeout_s = settings.api_body_timeout_s
    per_ip = settings.api_max_connections_per_ip
    open_per_ip: Counter[str] = Counter()
    events = _ThrottledLog()
    late_headers = _raw_response(
        408,
        "Request Timeout",
        "request_timeout",
        f"the request line and headers did not arrive within {header_timeout_s:g} s",
    )
    late_body = _raw_response(
        408,
        "Request Timeout",
        "request_timeout",
        f"the request body did not arrive within {body_timeout_s:g} s",
    )
    too_many = _raw_response(
        429,
        "Too Many Requests",
        "too_many_connections",
        f"at most {per_ip} connections at once from one address",
        extra="retry-after: 5\r\n",
    )

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._deadline: asyncio.TimerHandle | None = None
            self._counted_ip: str | None = None

        # --- connections per IP -------------------------------------------------------------

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            ip = self.client[0] if self.client else None
            if per_ip and ip is not None:
                if open_per_ip[ip] >= per_ip:
                    events.note("connections over the per-address cap")
                    transport.write(too_many)
                    transport.close()
                    return
                open_per_ip[ip] += 1
                self._counted_ip = ip
            self._arm(header_timeout_s, self._headers_late)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._counted_ip is not None:
                open_per_ip[self._counted_ip] -= 1
                if open_per_ip[self._counted_ip] <= 0:
                    del open_per_ip[self._counted_ip]
                self._counted_ip = None
            super().connection_lost(exc)

        # --- deadlines ----------------------------------------------------------------------

        def _arm(self, delay_s: float, handler: Any) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(delay_s, handler)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._deadline is None:  # the first byte of a request on a kept-alive connection
                self._arm(header_timeout_s, self._headers_late)

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()
            # Disarmed by on_message_complete, which comes at once for a request without a body.
            self._arm(body_timeout_s, self._body_late)

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

        def _headers_late(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            events.note("requests whose headers came too late")
            if self.cycle is None or self.cycle.response_complete:
                self.transport.write(late_headers)
            self.transport.close()

        def _body_late(self) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            events.note("requests whose body came too late")
            cycle = self.cycle
            if cycle is not None and not cycle.response_started:
                # The request's task stops waiting for the body (it reads a disconnect), and whatever it
                # would still answer is dropped: the 408 is the answer.
                cycle.disconnected = True
                cycle.message_event.set()
                self.transport.write(late_body)
            self.transport.close()

    return GuardedHttpToolsProtocol


def uvicorn_config(settings: Settings, app: Any, *, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        # uvicorn's loggers go through the process's handler (JSON in prod, with the request id).
        log_config=None,
        proxy_headers=True,
        http=guarded_protocol(settings),
    )


def serve(settings: Settings, make_app: Callable[[], Any], *, host: str, port: int, workers: int = 1) -> None:
    """Run the API until SIGTERM/SIGINT (what ``habitjobs api`` does), in ``workers`` processes.

    One process serves on one core. With more, the listening socket is opened here and each process is
    forked from this one (before any event loop or connection exists) and builds its own app: its own
    database and Redis pools, its own upload group commit, its own slow-client limits. The kernel spreads
    new connections over the processes. This process only supervises: SIGTERM/SIGINT is passed on (each
    process finishes its requests, as a single one does), and a process that dies is started again.
    """
    if workers <= 1:
        uvicorn.Server(uvicorn_config(settings, make_app(), host=host, port=port)).run()
        return
    sock = uvicorn_config(settings, None, host=host, port=port).bind_socket()
    children: set[int] = set()
    stopping = False

    def start_one() -> None:
        pid = os.fork()
        if pid == 0:  # the serving process
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                uvicorn.Server(uvicorn_config(settings, make_app(), host=host, port=port)).run(sockets=[sock])
                code = 0
            finally:
                os._exit(code)
        children.add(pid)

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(workers):
        start_one()
    log.info("API serving on %s:%d in %d processes (pids %s)", host, port, workers, sorted(children))
    last_restart = 0.0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        if stopping:
            continue
        log.error("API process %d ended (status %d); starting another", pid, status)
        time.sleep(max(0.0, last_restart + 1.0 - time.monotonic()))  # at most one restart a second
        last_restart = time.monotonic()
        if not stopping:
            start_one()
    sock.close()
