"""The HTTP/2 pool's waiting line, without a network: stream slots are never lost, never overbooked."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from habitjobs.push.h2client import Http2Pool, Unavailable


class StubConnection:
    """What the pool reads of a connection: its free streams, and whether it is still usable."""

    def __init__(self, limit: int, used: int = 0) -> None:
        self.limit = limit
        self.used = used
        self.reserved = 0
        self.draining = False
        self.closed = False

    @property
    def free(self) -> int:
        return self.limit - self.used - self.reserved


def pool_with(*conns: StubConnection) -> Http2Pool:
    """A pool whose connections are these stubs (compared by identity: the pool hands out what it holds)."""
    pool = Http2Pool("push.invalid", 443, ssl.create_default_context(), connections=len(conns))
    pool._conns = list(conns)  # type: ignore[arg-type]
    return pool


def same(got: object, expected: object) -> bool:
    return got is expected


async def test_a_free_stream_is_reserved_at_once() -> None:
    conn = StubConnection(limit=2)
    pool = pool_with(conn)
    assert same(pool._pick(), conn)
    assert same(pool._pick(), conn)
    assert same(pool._pick(), None)  # both slots reserved; the pool would open no more than its size
    assert conn.reserved == 2


async def test_waiters_are_served_in_order_as_streams_free_up() -> None:
    conn = StubConnection(limit=1, used=1)
    pool = pool_with(conn)
    deadline = asyncio.get_running_loop().time() + 5
    first = asyncio.create_task(pool._wait_for_slot(deadline))
    second = asyncio.create_task(pool._wait_for_slot(deadline))
    await asyncio.sleep(0)
    conn.used = 0
    pool.wake()
    assert same(await first, conn)
    assert not second.done()
    conn.reserved = 0  # first's request finished
    pool.wake()
    assert same(await second, conn)


async def test_a_woken_waiter_cancelled_before_it_runs_passes_its_slot_on() -> None:
    conn = StubConnection(limit=1, used=1)
    pool = pool_with(conn)
    deadline = asyncio.get_running_loop().time() + 5
    doomed = asyncio.create_task(pool._wait_for_slot(deadline))
    patient = asyncio.create_task(pool._wait_for_slot(deadline))
    await asyncio.sleep(0)
    conn.used = 0
    pool.wake()  # wakes ``doomed``…
    doomed.cancel()  # …which is cancelled before it can take the slot
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert same(await asyncio.wait_for(patient, 1), conn)
    assert pool._woken == 0


async def test_waiting_past_the_deadline_is_unavailable_and_leaks_nothing() -> None:
    conn = StubConnection(limit=1, used=1)
    pool = pool_with(conn)
    with pytest.raises(Unavailable, match="no free stream"):
        await pool._wait_for_slot(asyncio.get_running_loop().time() + 0.05)
    conn.used = 0
    pool.wake()  # nobody is waiting any more: the free slot stays free
    assert (conn.reserved, pool._woken) == (0, 0)
    assert same(pool._pick(), conn)
