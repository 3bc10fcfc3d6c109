"""A worker is SIGKILLed in the middle of a big batch; another one finishes it, applying every mutation
exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from habitjobs.config import Settings
from habitjobs.habits.models import HabitCompletion
from habitjobs.resources import Resources
from habitjobs.sync.models import SyncBatch, SyncClient, UserSyncState
from tests.support.sync import Device, accept, push_and_apply
from tests.support.users import MakeUser
from tests.support.workers import WorkerProcess

N_MUTATIONS = 1200
CHUNK = 5
EXTRA_ENV = {"HABITJOBS_SYNC_CHUNK_MUTATIONS": str(CHUNK), "HABITJOBS_SYNC_MAX_MUTATIONS": str(N_MUTATIONS)}


async def _progress(resources: Resources, user_id: uuid.UUID, client_id: str) -> int:
    async with resources.db.transaction() as session:
        last = await session.scalar(
            select(SyncClient.last_mutation_id).where(
                SyncClient.user_id == user_id, SyncClient.client_id == client_id
            )
        )
    return int(last or 0)


async def _status(resources: Resources, batch_id: uuid.UUID) -> SyncBatch:
    async with resources.db.transaction() as session:
        batch = await session.get(SyncBatch, batch_id)
    assert batch is not None
    return batch


@pytest.mark.slow
async def test_a_worker_killed_mid_batch_leaves_every_mutation_applied_exactly_once(
    settings: Settings, make_user: MakeUser, tmp_path: Path
) -> None:
    tuned = settings.model_copy(update={"sync_max_mutations": N_MUTATIONS, "sync_chunk_mutations": CHUNK})
    resources = Resources.open(tuned, application_name="habitjobs-test")
    workers: list[WorkerProcess] = []
    try:
        user = await make_user()
        phone = Device()
        habit_id = uuid.uuid4()
        phone.record("habit", "upsert", habit_id, 0, {"name": "Read"})
        await push_and_apply(resources, user.id, phone.batch())
        # Each day: check, uncheck, check again, change the value — every mutation newer than the last.
        days = N_MUTATIONS // 4
        for n in range(N_MUTATIONS):
            day = date(2025, 1, 1) + timedelta(days=n // 4)
            step = n % 4
            if step == 1:
                phone.uncheck(habit_id, day, n + 1)
            else:
                phone.check(habit_id, day, n + 1, value=str(step))
        batch_id = await accept(resources, user.id, phone.batch())  # queued in Redis by the outbox

        first = WorkerProcess(tuned, tmp_path / "first.log", "--queue", "sync", env=EXTRA_ENV)
        workers.append(first)
        await first.wait_started()
        deadline = time.monotonic() + 60
        progress = 0
        while progress < 2 * CHUNK:  # let it get properly under way, then kill it mid-batch
            assert time.monotonic() < deadline, first.output()
            progress = await _progress(resources, user.id, phone.client_id)
            await asyncio.sleep(0.005)
        first.kill()
        at_kill = await _progress(resources, user.id, phone.client_id)
        assert 0 < at_kill < N_MUTATIONS + 1, "the kill must land in the middle of the batch"
        assert (await _status(resources, batch_id)).status == "processing"

        second = WorkerProcess(tuned, tmp_path / "second.log", "--queue", "sync", env=EXTRA_ENV)
        workers.append(second)
        await second.wait_started()
        deadline = time.monotonic() + 60
        while (batch := await _status(resources, batch_id)).status not in ("applied", "failed"):
            assert time.monotonic() < deadline, second.output()
            await asyncio.sleep(0.05)

        result = batch.result
        assert batch.status == "applied", batch.error
        assert (result["applied"], result["ignored_stale"], result["rejected"]) == (N_MUTATIONS, 0, [])
        assert (result["already_applied"], result["processed"], result["last_mutation_id"]) == (
            0,
            N_MUTATIONS,
            N_MUTATIONS + 1,
        )
        async with resources.db.transaction() as session:
            version = await session.scalar(
                select(UserSyncState.version).where(UserSyncState.user_id == user.id)
            )
            rows = (
                await session.execute(
                    select(
                        HabitCompletion.deleted_at, HabitCompletion.value, HabitCompletion.server_version
                    ).where(HabitCompletion.user_id == user.id)
                )
            ).all()
            chunks_seen = await session.scalar(
                select(func.count(func.distinct(HabitCompletion.server_version))).where(
                    HabitCompletion.user_id == user.id
                )
            )
        # One committed version per chunk (plus the habit's batch): no chunk was committed twice.
        assert version == 1 + N_MUTATIONS // CHUNK
        assert len(rows) == days
        assert chunks_seen == N_MUTATIONS // CHUNK
        assert {(r.deleted_at, int(r.value)) for r in rows} == {(None, 3)}
        assert "Traceback" not in second.output()
    finally:
        for worker in workers:
            worker.kill()
        await resources.aclose()
