"""A small HTTP/2 client for APNs and FCM (docs/push.md): a few long-lived connections to one
server, and a FIFO line of requests waiting for a free stream.

Why not httpx: when the server lowers MAX_CONCURRENT_STREAMS below the streams in flight, httpcore 1.0
deadlocks for good (its own timeouts never fire), and it reports some answers that arrived together with a
GOAWAY as errors. Here a request waits (with a deadline) until a connection has a free stream, and every
failure says whether the request may have been processed (see :mod:`habitjobs.push.h2conn`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from habitjobs.push.h2conn import Ambiguous, Connection, Headers, NotSent, Refused, Response, Unavailable
from habitjobs.push.result import Outcome, SendResult, retry

__all__ = [
    "Ambiguous",
    "Headers",
    "Http2Pool",
    "NotSent",
    "Refused",
    "Response",
    "Stop",
    "Stopped",
    "Unavailable",
    "exchange",
]

# Asked right before a request is written: a reason not to send it after all (its provider was paused
# while it waited for a stream), or None.
Stop = Callable[[], str | None]


class NoFreeStream(Unavailable):
    """The server's streams stayed busy until the deadline (it is throttling us): nothing was sent."""


class Stopped(NotSent):
    """Not sent: the caller's ``stop`` said no when the request's turn came."""


log = logging.getLogger(__name__)

# After a failed connect, requests fail fast for this long instead of hammering the server
# (rapid reconnects look like an attack to APNs).
RECONNECT_PAUSE_S = 1.0
# A refused request was never processed, so it is resent at once, again and again while its deadline
# allows (a throttling or GOAWAY-happy server can refuse the same message several times in a row); this
# many refusals of one message make it a queue retry instead, so that a server that refuses everything
# costs a bounded number of round trips.
MAX_REFUSED_RESENDS = 50


class PooledConnection(Protocol):
    """What the pool uses of a connection (:class:`habitjobs.push.h2conn.Connection` in production)."""

    reserved: int  # slots the pool promised to waiting requests
    draining: bool
    closed: bool

    @property
    def free(self) -> int: ...

    def start(self, headers: Headers, body: bytes, deadline: float) -> Awaitable[Response]: ...

    def close(self) -> None: ...


class Http2Pool:
    """A few long-lived connections to one ``host:port``; requests wait (FIFO) for a free stream."""

    def __init__(
        self,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext,
        *,
        connections: int = 2,
        max_streams: int = 200,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.max_streams = max_streams
        self._ssl = ssl_context
        self._size = connections
        self._connect_timeout_s = connect_timeout_s
        self._conns: list[PooledConnection] = []
        self._connecting = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        # Waiters woken but not yet run: their slots are spoken for.
        self._woken = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._failed_until = 0.0
        self._last_error = ""
        self._closed = False
        self.connects = 0  # connections opened so far (observability, tests)

    @property
    def authority(self) -> bytes:
        return f"{self.host}:{self.port}".encode() if self.port != 443 else self.host.encode()

    async def request(
        self, headers: Headers, body: bytes, *, wait_s: float, answer_s: float, stop: Stop | None = None
    ) -> Response:
        """Send one request. Raises :class:`Refused`, :class:`Unavailable`, :class:`Stopped` or
        :class:`Ambiguous`.

        ``wait_s`` bounds the wait for a free stream (past it: :class:`Unavailable`, nothing sent);
        ``answer_s`` counts from the moment the request goes out (past it: :class:`Ambiguous`). Separate on
        purpose: time spent queueing must not shorten the answer's time, or a busy sender would give up on
        requests the server is processing — and send them a second time.
        """
        loop = asyncio.get_running_loop()
        conn = self._pick() if not self._waiters else None
        if conn is None:
            conn = await self._wait_for_slot(loop.time() + wait_s)
        if stop is not None and (why := stop()) is not None:
            conn.reserved -= 1  # the slot goes to the next in line
            self.wake()
            raise Stopped(why)
        return await conn.start(headers, body, loop.time() + answer_s)

    @property
    def waiting(self) -> int:
        """Requests waiting for a free stream now (observability, tests)."""
        return sum(1 for waiter in self._waiters if not waiter.done())

    def adopt(self, conn: PooledConnection) -> None:
        """Add an open connection to the pool and let waiting requests use it."""
        self._conns.append(conn)
        self.wake()

    def _pick(self) -> PooledConnection | None:
        best: PooledConnection | None = None
        best_free = 0
        for conn in self._conns:
            free = conn.free
            if free > best_free:
                best, best_free = conn, free
        if best is not None:
            best.reserved += 1
            return best
        self._grow()
        return None

    def _live(self) -> int:
        return sum(1 for c in self._conns if not c.draining and not c.closed)

    def _grow(self) -> None:
        if self._closed or self._live() + self._connecting >= self._size:
            return
        if time.monotonic() < self._failed_until:
            return
        self._connecting += 1
        task = asyncio.get_running_loop().create_task(self._connect())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self) -> None:
        conn = Connection(self)
        try:
            await asyncio.wait_for(
                conn.open(self.host, self.port, self._ssl, self.host), self._connect_timeout_s
            )
        except (OSError, TimeoutError, ConnectionError, ssl.SSLError) as exc:
            self._last_error = f"cannot connect to {self.host}:{self.port}: {exc!r}"
            log.warning("%s", self._last_error)
            self._failed_until = time.monotonic() + RECONNECT_PAUSE_S
            self._connecting -= 1
            self._fail_waiters_if_hopeless()
            return
        self._connecting -= 1
        self.connects += 1
        if self._closed:
            conn.close()
            return
        self.adopt(conn)

    async def _wait_for_slot(self, deadline: float) -> PooledConnection:
        loop = asyncio.get_running_loop()
        first = True
        while True:
            if self._closed:
                raise Unavailable("the sender is closed")
            if not self._live() and not self._connecting and time.monotonic() < self._failed_until:
                raise Unavailable(self._last_error or "no connection")
            waiter: asyncio.Future[None] = loop.create_future()
            if first:
                self._waiters.append(waiter)
            else:
                self._waiters.appendleft(waiter)  # keep our place in the line
            first = False
            timer = loop.call_at(deadline, _expire_waiter, waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    # Woken, then cancelled before it could take its slot: pass the slot on.
                    self._woken -= 1
                    self.wake()
                raise
            finally:
                timer.cancel()
            self._woken -= 1
            conn = self._pick()
            if conn is not None:
                return conn

    def wake(self) -> None:
        """Capacity may have grown: let as many waiters try as there are free streams."""
        if not self._waiters:
            return
        free = sum(max(0, c.free) for c in self._conns) - self._woken
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._woken += 1
                free -= 1
        if self._waiters and free <= 0:
            self._grow()

    def _fail_waiters_if_hopeless(self) -> None:
        if self._live() or self._connecting:
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(Unavailable(self._last_error or "no connection"))

    def connection_draining(self, conn: Connection) -> None:
        self._grow()

    def connection_closed(self, conn: Connection) -> None:
        if conn in self._conns:
            self._conns.remove(conn)
        if self._waiters:
            self._grow()
            self.wake()
        self._fail_waiters_if_hopeless()

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self._conns):
            conn.close()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(Unavailable("the sender is closed"))
        # Let the transports finish closing before the loop moves on.
        await asyncio.sleep(0)


def _expire_waiter(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(NoFreeStream("no free stream before the deadline"))


async def exchange(
    pool: Http2Pool,
    headers: Headers,
    body: bytes,
    *,
    timeout_s: float,
    provider: str,
    stop: Stop | None = None,
) -> Response | SendResult:
    """One push request as both senders make it: the provider's answer, or the queue retry standing for none.

    Waiting for a stream and resending what the server refused unprocessed share one ``timeout_s``
    deadline; once sent, the answer gets ``timeout_s`` of its own.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    refused = 0
    while (remaining := deadline - loop.time()) > 0:
        try:
            return await pool.request(headers, body, wait_s=remaining, answer_s=timeout_s, stop=stop)
        except Stopped as exc:  # paused while it waited: nothing was sent
            return SendResult(Outcome.AUTH_CONFIG, reason=str(exc))
        except Refused as exc:  # never processed: resend at once
            refused += 1
            if refused > MAX_REFUSED_RESENDS:
                return retry(f"{provider} refused the stream {refused} times ({exc})", 1.0)
        except NoFreeStream as exc:  # the server keeps its streams few: a "slow down", not a failure
            return retry(f"{provider} had no free stream, nothing sent: {exc}", 5.0, slow_down=True)
        except Unavailable as exc:
            return retry(f"{provider} unavailable, nothing sent (unreachable): {exc}", 5.0)
        except Ambiguous as exc:
            return retry(f"no answer from {provider} ({exc}); it may have been delivered", 1.0)
    return retry(f"{provider} refused the stream {refused} times before the deadline", 1.0)
