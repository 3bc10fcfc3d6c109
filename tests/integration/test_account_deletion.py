"""Deleting an account: locked at once, erased by a background job from every table the schema ties to a
user (found from the catalog, so a new table is covered without touching this test) and from the queues;
another user's rows untouched, row by row."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, text

from habitjobs.accounts.deletion import DELETE_JOB
from habitjobs.accounts.models import AccountDeletion, Device
from habitjobs.push import repository as push_repo
from habitjobs.push import service as push_service
from habitjobs.push.schemas import Notification
from habitjobs.queue.operations import JobOperations
from habitjobs.queue.runtime import WorkerRuntime
from habitjobs.resources import JobContext, Resources
from tests.support.erasure import (
    Census,
    Schema,
    Seeded,
    assert_erased_and_others_untouched,
    read_schema,
    redis_keys_mentioning,
    seed_users,
    tables_mentioning,
    take_census,
)
from tests.support.sync import Device as Phone
from tests.support.users import MakeUser
from tests.support.workers import drain

# A table this test adds: it has no user_id column and reaches the user only through a device.
_NOTES = (
    "CREATE TABLE IF NOT EXISTS test_device_notes (id uuid PRIMARY KEY,"
    " device_id uuid NOT NULL REFERENCES devices(id) ON DELETE CASCADE, note text NOT NULL)"
)


@pytest.fixture
async def device_notes(resources: Resources) -> AsyncIterator[None]:
    async with resources.db.transaction() as session:
        await session.execute(text(_NOTES))
    try:
        yield
    finally:
        async with resources.db.transaction() as session:
            await session.execute(text("DROP TABLE IF EXISTS test_device_notes"))


async def _note(resources: Resources, device_id: uuid.UUID) -> None:
    async with resources.db.transaction() as session:
        await session.execute(
            text("INSERT INTO test_device_notes VALUES (:id, :device, 'charging')"),
            {"id": uuid.uuid4(), "device": device_id},
        )


def _assert_holds_everywhere(schema: Schema, census: Census, user_id: uuid.UUID) -> None:
    empty = [t for t in schema.holding_tables() if not census.users.get(t)]
    assert empty == [], (
        f"the test gave user {user_id} no row in {empty}: seed them (tests/support/erasure.py)"
    )


async def test_a_deleted_account_leaves_nothing_and_touches_nobody_else(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser, device_notes: None, redis_url: str
) -> None:
    leaving, staying = await make_user(), await make_user()
    leaving_device, staying_device = await seed_users(
        resources,
        client,
        [
            Seeded(leaving.id, leaving.headers, "Asia/Kathmandu"),
            Seeded(staying.id, staying.headers, "Europe/Berlin"),
        ],
    )
    await _note(resources, leaving_device)
    await _note(resources, staying_device)

    accepted = await client.delete("/v1/me", headers=leaving.headers)
    assert accepted.status_code == 202, accepted.text
    started = accepted.json()
    assert started["job_id"] == f"delete-user-{started['deletion_id']}"
    assert started["status_url"] == "/v1/me/deletion"
    await resources.outbox.settle()

    schema = await read_schema(resources)
    assert "test_device_notes" in schema.holding_tables()  # found through its reference to devices
    before = await take_census(resources, schema, leaving.id)
    _assert_holds_everywhere(schema, before, leaving.id)
    assert await redis_keys_mentioning(redis_url, resources.settings.queue_prefix, str(leaving.id))

    # Locked at once: tokens refused, devices disabled; the deletion itself is visible to its owner.
    assert (await client.get("/v1/me", headers=leaving.headers)).status_code == 401
    late = Phone()
    late.record("habit", "upsert", uuid.uuid4(), 0, {"name": "Late"})
    upload = late.batch()
    assert (await client.post("/v1/sync/push", headers=leaving.headers, json=upload)).status_code == 401
    assert (await client.get("/v1/me/deletion", headers=leaving.headers)).json()["status"] == "scheduled"
    async with resources.db.transaction() as session:
        device = await session.get(Device, leaving_device)
        assert device is not None
        assert (device.push_enabled, device.invalid_reason) == (False, "account_locked")

    await drain(resources, queues=["default"])

    async with resources.db.transaction() as session:
        deletion = await session.get(AccountDeletion, uuid.UUID(started["deletion_id"]))
    assert deletion is not None
    assert (deletion.status, deletion.user_id) == ("done", None)
    erased = sum(len(rows) for table, rows in before.users.items() if not schema.only_cleared(table))
    assert deletion.rows_deleted == erased
    assert await tables_mentioning(resources, schema, str(leaving.id)) == {}
    assert await redis_keys_mentioning(redis_url, resources.settings.queue_prefix, str(leaving.id)) == []

    assert_erased_and_others_untouched(schema, before, await take_census(resources, schema, leaving.id))
    assert any(before.others[t] for t in schema.holding_tables())
    # The other user's jobs are still there, their account works.
    assert await redis_keys_mentioning(redis_url, resources.settings.queue_prefix, str(staying.id))
    assert (await client.get("/v1/me", headers=staying.headers)).status_code == 200
    assert (await client.get("/v1/me", headers=leaving.headers)).status_code == 401

    # The operator sees the deletion among the finished jobs, and it names nobody.
    page = await JobOperations(resources.producer).list_jobs("default", "completed")
    [job] = [j for j in page.jobs if j.name == DELETE_JOB]
    assert job.id == started["job_id"]
    assert job.return_value["status"] == "done"
    assert str(leaving.id) not in str(job.data) + str(job.return_value)


async def test_a_deletion_asked_twice_is_one_deletion(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    answers = await asyncio.gather(*(client.delete("/v1/me", headers=user.headers) for _ in range(5)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["deletion_id"] for a in answers}) == 1
    again = await client.delete("/v1/me", headers=user.headers)  # the locked account may ask again
    assert again.json()["deletion_id"] == answers[0].json()["deletion_id"]
    async with resources.db.transaction() as session:
        rows = (await session.scalars(select(AccountDeletion))).all()
    assert len(rows) == 1
    await drain(resources, queues=["default"])
    async with resources.db.transaction() as session:
        [row] = (await session.scalars(select(AccountDeletion))).all()
    assert row.status == "done"
    # The job once more (a duplicate delivery): nothing left to do, nothing changes.
    spec = resources.registry.get(DELETE_JOB)
    ctx = JobContext(row.job_id, spec.name, spec.queue, 1, spec.policy.attempts, resources)
    assert (await spec.handler(ctx, spec.parse({"deletion_id": str(row.id)})))["status"] == "done"
    async with resources.db.transaction() as session:
        [settled] = (await session.scalars(select(AccountDeletion))).all()
    assert (settled.status, settled.rows_deleted, settled.finished_at) == (
        "done",
        row.rows_deleted,
        row.finished_at,
    )


async def test_the_grace_period_can_be_cancelled_and_the_account_works_again(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    resources.settings = resources.settings.model_copy(update={"account_deletion_grace_s": 3600})
    user = await make_user()
    device_id = uuid.uuid4()
    put = await client.put(
        f"/v1/devices/{device_id}", headers=user.headers, json={"platform": "ios", "push_token": "a" * 64}
    )
    assert put.status_code == 200
    async with resources.db.transaction() as session:
        [pending] = await push_service.create_deliveries(
            session,
            user.id,
            Notification.test(),
            dedupe_key="test:before-lock",
            not_after=datetime.now(UTC) + timedelta(minutes=10),
        )

    accepted = (await client.delete("/v1/me", headers=user.headers)).json()
    not_before = datetime.fromisoformat(accepted["not_before"])
    assert timedelta(minutes=59) < not_before - datetime.now(UTC) <= timedelta(hours=1)
    ops = JobOperations(resources.producer)
    delayed = await ops.list_jobs("default", "delayed")
    assert [j.id for j in delayed.jobs] == [accepted["job_id"]]  # the operator sees it waiting

    # No push reaches the locked account: nothing new fans out, what was pending is skipped.
    async with resources.db.transaction() as session:
        assert (
            await push_service.create_deliveries(
                session,
                user.id,
                Notification.test(),
                dedupe_key="test:after-lock",
                not_after=datetime.now(UTC) + timedelta(minutes=10),
            )
            == []
        )
        now = datetime.now(UTC)
        [claimed] = await push_repo.claim(session, [pending], now=now, lease_until=now + timedelta(minutes=1))
        assert (claimed.status, claimed.skip_reason) == ("skipped", "device disabled")

    # Run before its time (an operator promoted it): it waits for the grace period, erasing nothing.
    await ops.promote("default", accepted["job_id"])
    runtime = WorkerRuntime(resources, queues=["default"])
    await runtime.start()
    try:
        deadline = time.monotonic() + 30
        while (
            job := await ops.job("default", accepted["job_id"])
        ).attempts_made < 1 or job.state != "delayed":
            assert time.monotonic() < deadline, job
            await asyncio.sleep(0.02)
    finally:
        await runtime.stop(grace_s=5)
    assert job.delay_ms > 3_500_000  # back to waiting out the grace period
    assert (await client.get("/v1/me/deletion", headers=user.headers)).json()["status"] == "scheduled"

    cancelled = await client.delete("/v1/me/deletion", headers=user.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert (await client.get("/v1/me", headers=user.headers)).status_code == 200
    [device] = (await client.get("/v1/devices", headers=user.headers)).json()
    assert device["push_enabled"] is True
    assert (await client.delete("/v1/me/deletion", headers=user.headers)).status_code == 404

    # When the delayed job comes, it finds the deletion cancelled and does nothing.
    await ops.promote("default", accepted["job_id"])
    await drain(resources, queues=["default"])
    job = await ops.job("default", accepted["job_id"])
    assert (job.state, job.return_value["status"]) == ("completed", "cancelled")
    assert (await client.get("/v1/habits", headers=user.headers)).status_code == 200

    # A new request is a new deletion; once it runs it cannot be cancelled.
    resources.settings = resources.settings.model_copy(update={"account_deletion_grace_s": 0})
    second = (await client.delete("/v1/me", headers=user.headers)).json()
    assert second["deletion_id"] != accepted["deletion_id"]
    async with resources.db.transaction() as session:
        await session.execute(
            text("UPDATE account_deletions SET status = 'running' WHERE status = 'scheduled'")
        )
    too_late = await client.delete("/v1/me/deletion", headers=user.headers)
    assert too_late.status_code == 409
