"""`habitjobs db upgrade --wait-s`: compose's migrate step waits for a PostgreSQL that is not reachable
yet (a fresh volume's first start), and still fails at once for anything else."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from alembic.util.exc import CommandError

from habitjobs.api.app import create_app
from habitjobs.config import Settings
from habitjobs.db import migrate
from habitjobs.resources import Resources
from tests.fakes.push import eventually
from tests.support import stores
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    admin = stores.base_database_url()
    name = f"hjwait_{os.getpid()}_{secrets.token_hex(3)}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = stores.with_database(admin, name)
    yield url
    await stores.drop_test_database(admin, url)


async def test_upgrade_waits_while_postgres_is_unreachable_then_migrates(
    empty_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    target = urlsplit(empty_database)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    proxy.start()
    proxy.cut()  # nothing listens: connections are refused
    through = target._replace(netloc=f"{target.username}@127.0.0.1:{proxy.port}").geturl()
    caplog.set_level(logging.WARNING, logger="habitjobs.db.migrate")
    try:
        upgrading = asyncio.create_task(asyncio.to_thread(migrate.upgrade_when_reachable, through, wait_s=60))
        await eventually(lambda: caplog.text.count("not reachable yet") >= 2, timeout_s=20)
        assert not upgrading.done()
        proxy.restore()
        await asyncio.wait_for(upgrading, timeout=60)
    finally:
        proxy.close()
    conn = await asyncpg.connect(empty_database)
    try:
        assert await conn.fetchval("SELECT version_num FROM alembic_version") in migrate.current_heads()
    finally:
        await conn.close()


async def test_upgrade_gives_up_after_the_wait_and_fails_at_once_for_other_errors(
    empty_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="habitjobs.db.migrate")
    target = urlsplit(empty_database)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    proxy.start()
    proxy.cut()
    through = target._replace(netloc=f"{target.username}@127.0.0.1:{proxy.port}").geturl()
    try:
        with pytest.raises(Exception) as gave_up:  # noqa: PT011 - checked just below
            await asyncio.to_thread(migrate.upgrade_when_reachable, through, wait_s=2)
        assert migrate.unreachable(gave_up.value), repr(gave_up.value)
        assert caplog.text.count("not reachable yet") >= 1  # it did retry before giving up
    finally:
        proxy.close()
    # Reachable, but asked for a revision that does not exist: no waiting, no retrying.
    caplog.clear()
    with pytest.raises(CommandError):
        await asyncio.to_thread(migrate.upgrade_when_reachable, empty_database, "no-such-revision", wait_s=60)
    assert "not reachable yet" not in caplog.text


async def test_the_api_is_not_ready_before_its_schema_is_migrated(
    empty_database: str, redis_url: str
) -> None:
    """What compose's API health check reads: /readyz is 503 on a database without this code's schema,
    200 once `db upgrade` ran."""
    settings = Settings(
        env="test", database_url=empty_database, redis_url=redis_url, queue_prefix=stores.new_prefix()
    )
    resources = Resources.open(settings, application_name="habitjobs-test")
    try:
        transport = httpx.ASGITransport(app=create_app(settings, resources=resources))
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
            before = await http.get("/readyz")
            assert before.status_code == 503
            assert before.json()["checks"] == {"postgres": "error: SchemaBehind", "redis": "ok"}
            await asyncio.to_thread(migrate.upgrade, empty_database)
            after = await http.get("/readyz")
            assert after.status_code == 200, after.text
    finally:
        await resources.aclose()
