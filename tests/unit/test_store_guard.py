"""The API's answers when a store does not answer: 503 without re-raising, a hard deadline, one log line
per outage episode. (The same against real stalled stores, over real keep-alive connections:
tests/e2e/test_store_faults.py.)"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
import redis.exceptions
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from habitjobs.api.guard import StoreGuard
from habitjobs.outage import OutageLog, is_store_outage

DEADLINE_S = 0.3


class Boom(Exception):
    pass


def guarded_app(abandoned: list[str]) -> Starlette:
    """The guard where the API has it: inside the server-error layer (which would log and re-raise)."""

    async def ok(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def redis_away(_request: Request) -> PlainTextResponse:
        raise redis.exceptions.TimeoutError("Timeout reading from redis:6379")

    async def bug(_request: Request) -> PlainTextResponse:
        raise Boom("a bug, not an outage")

    async def hangs(request: Request) -> PlainTextResponse:
        try:
            await asyncio.Event().wait()  # a call that never returns
        finally:
            abandoned.append(request.url.path)
        return PlainTextResponse("never")

    async def slow_admin(_request: Request) -> PlainTextResponse:
        await asyncio.sleep(DEADLINE_S * 2)
        return PlainTextResponse("done")

    return Starlette(
        routes=[
            Route("/ok", ok),
            Route("/redis-away", redis_away),
            Route("/bug", bug),
            Route("/hangs", hangs),
            Route("/admin/retry-everything", slow_admin),
        ],
        middleware=[Middleware(StoreGuard, deadline_s=DEADLINE_S)],
    )


async def test_an_outage_is_answered_503_and_not_raised_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    transport = httpx.ASGITransport(
        app=guarded_app([]), raise_app_exceptions=True
    )  # a re-raise would fail the call
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        with caplog.at_level(logging.INFO, logger="habitjobs.api.guard"):
            answers = [await http.get("/redis-away") for _ in range(5)]
    for answer in answers:
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "5"
        assert answer.json() == {
            "error": {"code": "unavailable", "message": "a backing service is unavailable; retry shortly"}
        }
    lines = [r.getMessage() for r in caplog.records if r.name == "habitjobs.api.guard"]
    assert lines == ["API: a store is unavailable (TimeoutError: Timeout reading from redis:6379)"]


async def test_a_bug_is_still_raised() -> None:
    transport = httpx.ASGITransport(app=guarded_app([]), raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        with pytest.raises(Boom):
            await http.get("/bug")
        assert (await http.get("/ok")).text == "ok"


async def test_a_request_past_its_deadline_is_answered_503_and_cancelled() -> None:
    abandoned: list[str] = []
    transport = httpx.ASGITransport(app=guarded_app(abandoned), raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test", timeout=5) as http:
        answer = await http.get("/hangs")
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "unavailable"
        for _ in range(100):  # its task was cancelled and ran its clean-up
            if abandoned:
                break
            await asyncio.sleep(0.01)
        assert abandoned == ["/hangs"]
        # Operators' routes have no deadline (a long retry of every failed job is not cut off).
        assert (await http.get("/admin/retry-everything")).text == "done"


def test_an_outage_episode_is_two_lines_whatever_the_number_of_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    outages = OutageLog(logging.getLogger("test.outage"), "API", quiet_s=10, clock=lambda: now[0])
    error = ConnectionRefusedError(111, "Connection refused")
    with caplog.at_level(logging.INFO, logger="test.outage"):
        for second in range(30):  # a 30 s outage, a failure a second
            now[0] = float(second)
            outages.failed(error)
            outages.recovered()  # successes meanwhile (requests that needed no store) end nothing
        now[0] = 35.0
        outages.recovered()  # 6 s without a failure: not yet over
        now[0] = 40.0
        outages.recovered()
        now[0] = 100.0
        outages.failed(error)  # a new outage, much later
    assert [r.getMessage() for r in caplog.records] == [
        "API: a store is unavailable (ConnectionRefusedError: [Errno 111] Connection refused)",
        "API: no store failure for 11 s; the outage lasted 29.0 s (30 failure(s))",
        "API: a store is unavailable (ConnectionRefusedError: [Errno 111] Connection refused)",
    ]


def test_what_counts_as_an_outage() -> None:
    assert is_store_outage(TimeoutError())
    assert is_store_outage(ConnectionRefusedError())
    assert is_store_outage(redis.exceptions.ConnectionError("gone"))
    assert is_store_outage(redis.exceptions.TimeoutError("slow"))
    wrapped = RuntimeError("while enqueueing")
    wrapped.__cause__ = redis.exceptions.TimeoutError("slow")
    assert is_store_outage(wrapped)
    assert not is_store_outage(ValueError("bad input"))
    assert not is_store_outage(Boom())
