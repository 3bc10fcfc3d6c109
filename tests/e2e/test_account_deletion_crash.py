"""A worker is SIGKILLed in the middle of an account deletion; another one finishes it, and nothing of the
user is left anywhere — while another user's rows stay exactly as they were."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from habitjobs.accounts.models import AccountDeletion, User
from habitjobs.config import Settings
from habitjobs.habits.models import HabitCompletion
from habitjobs.resources import Resources
from tests.support.erasure import (
    Seeded,
    assert_erased_and_others_untouched,
    read_schema,
    redis_keys_mentioning,
    seed_users,
    tables_mentioning,
    take_census,
)
from tests.support.users import MakeUser
from tests.support.workers import WorkerProcess

EXTRA_ROWS = 20_000
CHUNK = 100
EXTRA_ENV = {"HABITJOBS_ACCOUNT_DELETION_CHUNK_ROWS": str(CHUNK)}

# Twenty thousand days of one habit: enough chunks for the kill to land in the middle.
_MANY_COMPLETIONS = text(
    """
    INSERT INTO habit_completions (id, user_id, habit_id, local_date, client_updated_at)
    SELECT gen_random_uuid(), h.user_id, h.id, DATE '1950-01-01' + n, now()
    FROM (SELECT id, user_id FROM habits WHERE user_id = :user_id AND deleted_at IS NULL LIMIT 1) h,
         generate_series(0, :rows - 1) AS n
    """
)


async def _deletion(resources: Resources, deletion_id: uuid.UUID) -> AccountDeletion:
    async with resources.db.transaction() as session:
        found = await session.get(AccountDeletion, deletion_id)
    assert found is not None
    return found


@pytest.mark.slow
async def test_a_worker_killed_mid_deletion_leaves_nothing_of_the_user(
    settings: Settings,
    resources: Resources,
    client: httpx.AsyncClient,
    make_user: MakeUser,
    redis_url: str,
    tmp_path: Path,
) -> None:
    leaving, staying = await make_user(), await make_user()
    await seed_users(
        resources,
        client,
        [
            Seeded(leaving.id, leaving.headers, "Asia/Kolkata"),
            Seeded(staying.id, staying.headers, "America/Lima"),
        ],
    )
    async with resources.db.transaction() as session:
        await session.execute(_MANY_COMPLETIONS, {"user_id": leaving.id, "rows": EXTRA_ROWS})
    accepted = await client.delete("/v1/me", headers=leaving.headers)
    assert accepted.status_code == 202
    deletion_id = uuid.UUID(accepted.json()["deletion_id"])
    await resources.outbox.settle()
    schema = await read_schema(resources)
    before = await take_census(resources, schema, leaving.id)
    assert [t for t in schema.holding_tables() if not before.users[t]] == []

    workers: list[WorkerProcess] = []
    try:
        first = WorkerProcess(settings, tmp_path / "first.log", "--queue", "default", env=EXTRA_ENV)
        workers.append(first)
        await first.wait_started()
        deadline = time.monotonic() + 60
        while (await _deletion(resources, deletion_id)).rows_deleted < 20 * CHUNK:
            assert time.monotonic() < deadline, first.output()
            await asyncio.sleep(0.005)
        first.kill()
        at_kill = await _deletion(resources, deletion_id)
        assert at_kill.status == "running", "the kill must land in the middle of the deletion"
        async with resources.db.transaction() as session:
            left = await session.scalar(
                select(func.count()).select_from(HabitCompletion).where(HabitCompletion.user_id == leaving.id)
            )
            assert await session.get(User, leaving.id) is not None
        assert 0 < int(left or 0) < EXTRA_ROWS

        second = WorkerProcess(settings, tmp_path / "second.log", "--queue", "default", env=EXTRA_ENV)
        workers.append(second)
        await second.wait_started()
        deadline = time.monotonic() + 90
        while (done := await _deletion(resources, deletion_id)).status != "done":
            assert time.monotonic() < deadline, second.output()
            await asyncio.sleep(0.05)
        assert "Traceback" not in second.output()
    finally:
        for worker in workers:
            worker.kill()

    assert done.user_id is None
    assert await tables_mentioning(resources, schema, str(leaving.id)) == {}
    assert await redis_keys_mentioning(redis_url, settings.queue_prefix, str(leaving.id)) == []
    assert_erased_and_others_untouched(schema, before, await take_census(resources, schema, leaving.id))
    # Every erased row counted exactly once across both workers: no chunk was committed twice.
    erased = sum(len(rows) for table, rows in before.users.items() if not schema.only_cleared(table))
    assert done.rows_deleted == erased
    assert (await client.get("/v1/me", headers=staying.headers)).status_code == 200
