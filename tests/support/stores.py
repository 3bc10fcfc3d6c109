"""The real PostgreSQL and Redis the tests run against.

One private database per test run (created, migrated once, dropped at the end) and one Redis key
prefix per test, so several runs can share the same servers without seeing each other.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

from habitjobs.db import migrate

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


def base_redis_url() -> str:
    return os.environ.get("HABITJOBS_TEST_REDIS_URL") or DEFAULT_TEST_REDIS_URL


def base_database_url() -> str:
    return os.environ.get("HABITJOBS_TEST_DATABASE_URL") or DEFAULT_TEST_DATABASE_URL


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(_plain(url))
    return urlunsplit(parts._replace(path=f"/{name}"))


async def create_test_database(admin_url: str) -> str:
    """Create and migrate a fresh database; returns its URL."""
    name = f"hjtest_{os.getpid()}_{secrets.token_hex(3)}"
    conn = await asyncpg.connect(_plain(admin_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(admin_url, name)
    await asyncio.to_thread(migrate.upgrade, url)
    return url


async def drop_test_database(admin_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(_plain(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def truncate_all(url: str, tables: list[str]) -> None:
    conn = await asyncpg.connect(_plain(url))
    try:
        await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


def new_prefix() -> str:
    return f"hjt{secrets.token_hex(5)}"


async def delete_prefix(url: str, prefix: str) -> None:
    client = aioredis.from_url(url)
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.unlink(*batch)
                batch.clear()
        if batch:
            await client.unlink(*batch)
    finally:
        await client.aclose()
