"""The migrations build exactly the schema the models describe, and run down and up again."""

import asyncio
from typing import Any

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from habitjobs.db import migrate
from habitjobs.db.all_models import Base, include_object
from habitjobs.db.engine import normalize_url
from tests.support import stores


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "compare_server_default": False, "include_object": include_object},
    )
    return list(compare_metadata(context, Base.metadata))


async def _schema_diff(url: str) -> list[Any]:
    engine = create_async_engine(normalize_url(url))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_diff)
    finally:
        await engine.dispose()


async def test_models_and_migrations_do_not_drift() -> None:
    admin = stores.base_database_url()
    url = await stores.create_test_database(admin)  # migrated to head
    try:
        diff = await _schema_diff(url)
        assert diff == [], f"models and migrations differ; write a migration for: {diff}"
    finally:
        await stores.drop_test_database(admin, url)


async def test_downgrade_to_base_and_upgrade_again() -> None:
    admin = stores.base_database_url()
    url = await stores.create_test_database(admin)
    try:
        await asyncio.to_thread(migrate.downgrade, url, "base")
        conn = await asyncpg.connect(url)
        try:
            tables = await conn.fetch(
                "SELECT tablename FROM pg_tables"
                " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
        finally:
            await conn.close()
        assert tables == []
        await asyncio.to_thread(migrate.upgrade, url)
        assert await _schema_diff(url) == []
    finally:
        await stores.drop_test_database(admin, url)


def test_a_single_head() -> None:
    assert len(migrate.current_heads()) == 1
