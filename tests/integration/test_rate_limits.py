"""Per-user rate limits: 429 with Retry-After and the IETF RateLimit fields, shared by every API process,
one class per kind of route, and an API that keeps answering when Redis does not."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from urllib.parse import urlsplit

import httpx
import pytest

from habitjobs.config import Settings
from tests.support.apps import open_api
from tests.support.net import free_port
from tests.support.sync import Device
from tests.support.tcp_proxy import TcpProxy
from tests.support.users import MakeUser

ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def api(settings: Settings) -> ClientFactory:
    """An API (its own resources, as another process would have) with some settings changed."""
    return functools.partial(open_api, settings)


def _fields(answer: httpx.Response) -> tuple[str, str]:
    return answer.headers["RateLimit-Policy"], answer.headers["RateLimit"]


def _remaining(answer: httpx.Response) -> int:
    match = re.fullmatch(r'"\w+";r=(\d+);t=(\d+)', answer.headers["RateLimit"])
    assert match, answer.headers["RateLimit"]
    return int(match.group(1))


async def test_writes_over_the_limit_get_429_with_retry_after_and_ratelimit_fields(
    api: ClientFactory, make_user: MakeUser
) -> None:
    alice, bob = await make_user(), await make_user()
    async with api(rate_limit_write="3/60s") as http:
        answers = [
            await http.post("/v1/habits", headers=alice.headers, json={"name": f"h{i}"}) for i in range(3)
        ]
        assert [a.status_code for a in answers] == [201, 201, 201]
        assert _fields(answers[0])[0] == '"write";q=3;w=60'
        assert [_remaining(a) for a in answers] == [2, 1, 0]

        refused = await http.post("/v1/habits", headers=alice.headers, json={"name": "one too many"})
        assert refused.status_code == 429, refused.text
        error = refused.json()["error"]
        assert error["code"] == "rate_limited"
        assert error["policy"] == "write"
        assert error["limit"] == 3
        assert error["window_s"] == 60
        retry_after = int(refused.headers["Retry-After"])
        assert 1 <= retry_after <= 20  # one request comes back every 60 / 3 s
        assert _fields(refused) == ('"write";q=3;w=60', f'"write";r=0;t={_fields(refused)[1].split("t=")[1]}')
        assert _remaining(refused) == 0

        # Nothing was written by the refused request; reads have their own class; Bob his own quota.
        listed = await http.get("/v1/habits", headers=alice.headers)
        assert listed.status_code == 200
        assert sorted(h["name"] for h in listed.json()) == ["h0", "h1", "h2"]
        assert _fields(listed)[0] == '"read";q=300;w=60'
        assert (await http.post("/v1/habits", headers=bob.headers, json={"name": "b"})).status_code == 201
        # A DELETE is a write, and answers 429 too (its 204 is built as a plain response).
        habit_id = listed.json()[0]["id"]
        refused_delete = await http.delete(f"/v1/habits/{habit_id}", headers=alice.headers)
        assert refused_delete.status_code == 429
        assert "RateLimit" in refused_delete.headers


async def test_the_limit_is_shared_by_all_api_processes(api: ClientFactory, make_user: MakeUser) -> None:
    user = await make_user()
    async with api(rate_limit_write="4/60s") as first, api(rate_limit_write="4/60s") as second:
        statuses = []
        for i in range(6):
            http = first if i % 2 == 0 else second
            statuses.append(
                (
                    await http.post(
                        "/v1/routines", headers=user.headers, json={"kind": "custom", "name": f"r{i}"}
                    )
                ).status_code
            )
    assert statuses == [201, 201, 201, 201, 429, 429]


async def test_100_sync_uploads_in_a_row_are_throttled(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Regression: one user's 100 uploads were all accepted; the default is 60 per minute."""
    user = await make_user()
    phone = Device()
    statuses = []
    started = time.monotonic()
    for _ in range(100):
        phone.record(
            "focus_session",
            "upsert",
            uuid.uuid4(),
            0,
            {"started_at": "2026-03-02T06:00:00Z", "local_date": "2026-03-02"},
        )
        answer = await client.post("/v1/sync/push", headers=user.headers, json=phone.batch())
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            assert answer.json()["error"]["policy"] == "sync"
            assert int(answer.headers["Retry-After"]) >= 1
            assert answer.headers["RateLimit-Policy"] == '"sync";q=60;w=60'
            break
    assert statuses[-1] == 429
    # The quota refills one upload per second meanwhile, so a slow run gets a few more.
    elapsed_s = time.monotonic() - started
    assert 60 <= statuses.count(202) <= 60 + math.ceil(elapsed_s)


async def test_job_starting_routes_have_their_own_tight_class(
    api: ClientFactory, make_user: MakeUser
) -> None:
    """Regression: one user queued 700 exports without a 429 (the default is 10 per hour)."""
    user = await make_user()
    async with api() as http:
        statuses = [(await http.post("/v1/me/exports", headers=user.headers)).status_code for _ in range(12)]
        # The first starts an export, the next nine return it (one at a time), then the class is spent.
        assert statuses[0] == 202
        assert statuses[1:10] == [200] * 9
        assert statuses[10:] == [429, 429]
        last = await http.post("/v1/me/exports", headers=user.headers)
        assert last.headers["RateLimit-Policy"] == '"jobs";q=10;w=3600'
        assert int(last.headers["Retry-After"]) > 60
        # Other writes still pass.
        assert (await http.post("/v1/habits", headers=user.headers, json={"name": "x"})).status_code == 201


async def test_rate_limits_can_be_turned_off(api: ClientFactory, make_user: MakeUser) -> None:
    user = await make_user()
    async with api(rate_limit_write="1/60s", rate_limits_enabled=False) as http:
        for i in range(3):
            answer = await http.post("/v1/habits", headers=user.headers, json={"name": f"h{i}"})
            assert answer.status_code == 201
            assert "RateLimit" not in answer.headers


async def test_a_quota_finer_than_the_clock_is_counted_not_failed_open(
    api: ClientFactory, make_user: MakeUser, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: with millions a minute the interval rounded to 0 ms and the script's ``SET … PX 0``
    raised, so every request passed uncounted and "not enforced" was logged."""
    user = await make_user()
    async with api(rate_limit_write="1000000000/60s") as http:
        for i in range(3):
            answer = await http.post("/v1/habits", headers=user.headers, json={"name": f"h{i}"})
            assert answer.status_code == 201, answer.text
            assert _fields(answer)[0] == '"write";q=1000000000;w=60'
            assert _remaining(answer) > 999_000_000
    assert "not enforced" not in caplog.text


@asynccontextmanager
async def _silent_server() -> AsyncIterator[int]:
    """Accepts connections and never answers: a Redis that hangs without closing."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    port = free_port()
    server = await asyncio.start_server(hold, "127.0.0.1", port)
    try:
        yield port
    finally:
        server.close()
        for writer in held:
            writer.transport.abort()
        with contextlib.suppress(Exception):
            await server.wait_closed()


@pytest.mark.parametrize("redis_state", ["refusing", "hanging"])
async def test_a_redis_outage_lets_requests_through_and_logs_once(
    api: ClientFactory, make_user: MakeUser, caplog: pytest.LogCaptureFixture, redis_state: str
) -> None:
    user = await make_user()
    caplog.set_level(logging.WARNING, logger="habitjobs.api.ratelimit")
    async with contextlib.AsyncExitStack() as stack:
        if redis_state == "refusing":
            port = free_port()  # nothing listens there
        else:
            port = await stack.enter_async_context(_silent_server())
        http = await stack.enter_async_context(
            api(
                redis_url=f"redis://127.0.0.1:{port}/0",
                rate_limit_write="1/60s",
                rate_limit_redis_timeout_ms=200,
            )
        )
        for i in range(5):
            answer = await http.post("/v1/habits", headers=user.headers, json={"name": f"h{i}"})
            assert answer.status_code == 201, answer.text
            assert "RateLimit" not in answer.headers
    warnings = [r for r in caplog.records if "not enforced" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]


async def test_limits_apply_again_once_redis_is_back(
    api: ClientFactory, make_user: MakeUser, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    user = await make_user()
    caplog.set_level(logging.WARNING, logger="habitjobs.api.ratelimit")
    target = urlsplit(redis_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    proxy.start()
    try:
        through = f"redis://127.0.0.1:{proxy.port}{target.path or '/0'}"
        async with api(redis_url=through, rate_limit_write="2/60s") as http:
            proxy.cut()
            for i in range(4):
                assert (
                    await http.post("/v1/habits", headers=user.headers, json={"name": f"a{i}"})
                ).status_code == 201
            proxy.restore()
            deadline = time.monotonic() + 30
            while True:
                answer = await http.post("/v1/habits", headers=user.headers, json={"name": "b"})
                if answer.status_code == 429:
                    break
                assert answer.status_code == 201
                assert time.monotonic() < deadline, "the limit never applied again"
                await asyncio.sleep(0.2)
    finally:
        proxy.close()
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "not enforced" in m]) == 1, messages
    assert len([m for m in messages if "enforced again" in m]) == 1, messages
