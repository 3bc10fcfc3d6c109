"""The HTTP/2 pool's waiting line, without a network: stream slots are never lost, never overbooked.

Only the pool's public face is used: stand-in connections are handed to it with ``adopt`` (as its own
connects do), requests go through ``request``, and ``waiting`` says how many wait for a stream.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest

from habitjobs.push.h2client import Http2Pool, Unavailable
from habitjobs.push.h2conn import Headers, Response


class StubConnection:
    """A connection that answers every request at once with its name; each answered request keeps one
    stream open until the test ends it (``finish``), like a real one until the server's answer."""

    def __init__(self, name: str, limit: int, used: int = 0) -> None:
        self.name = name
        self.limit = limit
        self.used = used
        self.reserved = 0
        self.draining = False
        self.closed = False

    @property
    def free(self) -> int:
        return self.limit - self.used - self.reserved

    def start(self, headers: Headers, body: bytes, deadline: float) -> asyncio.Future[Response]:
        self.reserved -= 1
        self.used += 1
        answer: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        answer.set_result(Response(200, {}, self.name.encode()))
        return answer

    def finish(self, pool: Http2Pool) -> None:
        """One open stream ends; the pool hears of it, as from a real connection."""
        self.used -= 1
        pool.wake()

    def close(self) -> None:
        self.closed = True


def pool_with(*conns: StubConnection) -> Http2Pool:
    pool = Http2Pool("push.invalid", 443, ssl.create_default_context(), connections=len(conns))
    for conn in conns:
        pool.adopt(conn)
    return pool


async def send(pool: Http2Pool, wait_s: float = 5.0) -> bytes:
    return (await pool.request([], b"{}", wait_s=wait_s, answer_s=5.0)).body


async def until_waiting(pool: Http2Pool, count: int) -> None:
    async def check() -> None:
        while pool.waiting != count:
            await asyncio.sleep(0)

    await asyncio.wait_for(check(), 5)


async def test_free_streams_are_taken_at_once_and_never_overbooked() -> None:
    conn = StubConnection("a", limit=2)
    pool = pool_with(conn)
    assert await send(pool) == b"a"
    assert await send(pool) == b"a"
    assert (conn.used, conn.reserved) == (2, 0)
    with pytest.raises(Unavailable, match="no free stream"):
        await send(pool, wait_s=0.05)  # both streams busy; the pool opens no more than its size
    assert (conn.used, conn.reserved, pool.waiting) == (2, 0, 0)


async def test_waiters_are_served_in_order_as_streams_free_up() -> None:
    conn = StubConnection("a", limit=1, used=1)
    pool = pool_with(conn)
    first = asyncio.create_task(send(pool))
    await until_waiting(pool, 1)
    second = asyncio.create_task(send(pool))
    await until_waiting(pool, 2)
    conn.finish(pool)
    assert await first == b"a"
    assert pool.waiting == 1  # the second still waits: the first took the only stream
    assert not second.done()
    conn.finish(pool)  # the first request's stream ends
    assert await second == b"a"


async def test_a_woken_waiter_cancelled_before_it_runs_passes_its_slot_on() -> None:
    conn = StubConnection("a", limit=1, used=1)
    pool = pool_with(conn)
    doomed = asyncio.create_task(send(pool))
    await until_waiting(pool, 1)
    patient = asyncio.create_task(send(pool))
    await until_waiting(pool, 2)
    conn.finish(pool)  # wakes ``doomed``…
    doomed.cancel()  # …which is cancelled before it can take the slot
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert await asyncio.wait_for(patient, 1) == b"a"
    # Nothing is still counted for the cancelled waiter: the next freed stream goes to the next waiter.
    later = asyncio.create_task(send(pool, wait_s=2))
    await until_waiting(pool, 1)
    conn.finish(pool)
    assert await later == b"a"


async def test_waiting_past_the_deadline_is_unavailable_and_leaks_nothing() -> None:
    conn = StubConnection("a", limit=1, used=1)
    pool = pool_with(conn)
    with pytest.raises(Unavailable, match="no free stream"):
        await send(pool, wait_s=0.05)
    assert pool.waiting == 0
    conn.finish(pool)  # nobody is waiting any more: the free slot stays free
    assert conn.reserved == 0
    assert await send(pool, wait_s=0.05) == b"a"


async def test_requests_go_to_the_connection_with_the_most_free_streams() -> None:
    busy, idle = StubConnection("busy", limit=4, used=3), StubConnection("idle", limit=4)
    pool = pool_with(busy, idle)
    assert [await send(pool) for _ in range(4)] == [b"idle", b"idle", b"idle", b"busy"]
