"""Retention, table by table: rows older than their setting are deleted by ``maintenance.retention`` (run
with an injected clock), recent ones stay, and what the product still needs stays: a delivery's dedupe
key inside its window still stops a duplicate, an upload's status still answers after its payload's
partition was dropped, a pending outbox row stays for the relay. (Exports: tests/integration/
test_export_limits.py; tombstones: test_sync_merge.py.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, text, update

from habitjobs.accounts.models import AccountDeletion, Device
from habitjobs.analytics.models import AnalyticsRun
from habitjobs.clock import FrozenClock
from habitjobs.maintenance import jobs as maintenance_jobs
from habitjobs.push import service as push_service
from habitjobs.push.models import PushDelivery
from habitjobs.push.schemas import Notification
from habitjobs.push.templates import Kind
from habitjobs.queue.models import OutboxRow
from habitjobs.resources import JobContext, Resources
from habitjobs.sync.models import SyncBatch, SyncBatchPayload
from tests.fakes.push import eventually
from tests.support.sync import Device as Phone
from tests.support.sync import accept, push_and_apply
from tests.support.users import ApiUser

DAY = timedelta(days=1)
MakeUser = Callable[..., Awaitable[ApiUser]]


async def _retention(resources: Resources, now: datetime) -> dict[str, int]:
    resources.clock = FrozenClock(now)
    spec = resources.registry.get(maintenance_jobs.RETENTION_JOB)
    ctx = JobContext("retention-test", spec.name, spec.queue, 1, 1, resources)
    return await maintenance_jobs.run_retention(ctx, maintenance_jobs.Retention())


async def _partitions(resources: Resources, now: datetime) -> dict[str, dict[str, int]]:
    resources.clock = FrozenClock(now)
    spec = resources.registry.get(maintenance_jobs.PARTITIONS_JOB)
    ctx = JobContext("partitions-test", spec.name, spec.queue, 1, 1, resources)
    return await maintenance_jobs.run_partitions(ctx, maintenance_jobs.Partitions())


async def _device(resources: Resources, user_id: uuid.UUID) -> None:
    async with resources.db.transaction() as session:
        session.add(
            Device(
                id=uuid.uuid4(),
                user_id=user_id,
                platform="ios",
                provider="apns",
                push_token="t-" + str(user_id),
            )
        )


async def _deliver(
    resources: Resources, key: str, user_id: uuid.UUID, *, status: str, created: datetime
) -> int:
    """Create the deliveries of occasion ``key`` (one per device), then back-date and finish them."""
    occasion = push_service.Occasion(
        key, user_id, Notification(kind=Kind.TEST), None, created + timedelta(minutes=10)
    )
    async with resources.db.transaction() as session:
        made = await push_service.create_fan_out(session, [occasion])
        await session.execute(
            update(PushDelivery)
            .where(PushDelivery.id.in_([d for d, _ in made]))
            .values(created_at=created, status=status)
        )
    return len(made)


async def _delivery_statuses(resources: Resources) -> dict[str, str]:
    async with resources.db.transaction() as session:
        rows = await session.execute(select(PushDelivery.dedupe_key, PushDelivery.status))
        return {key.rsplit(":", 1)[0]: status for key, status in rows.all()}


async def test_push_deliveries_go_once_finished_and_old_and_their_dedupe_key_holds_until_then(
    resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    await _device(resources, user.id)
    now = datetime.now(UTC)
    keep = timedelta(seconds=resources.settings.push_delivery_keep_s)
    assert await _deliver(resources, "old-sent", user.id, status="sent", created=now - keep - DAY) == 1
    assert await _deliver(resources, "old-skipped", user.id, status="skipped", created=now - keep - DAY) == 1
    # Never finished (a stuck lease): the reconciliation and operators still need it.
    assert await _deliver(resources, "old-pending", user.id, status="pending", created=now - keep - DAY) == 1
    assert await _deliver(resources, "recent-sent", user.id, status="sent", created=now - DAY) == 1

    done = await _retention(resources, now)

    assert done["push_deliveries"] == 2
    assert await _delivery_statuses(resources) == {"old-pending": "pending", "recent-sent": "sent"}
    # The kept delivery's key still stops a duplicate of its occasion...
    assert await _deliver(resources, "recent-sent", user.id, status="sent", created=now) == 0
    # ...and a second run has nothing more to do.
    assert (await _retention(resources, now))["push_deliveries"] == 0


async def test_push_retention_works_through_a_backlog_in_batches(
    resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    await _device(resources, user.id)
    now = datetime.now(UTC)
    old = now - timedelta(seconds=resources.settings.push_delivery_keep_s) - DAY
    for i in range(7):
        await _deliver(resources, f"old-{i}", user.id, status="failed", created=old)
    resources.settings = resources.settings.model_copy(update={"retention_batch": 2})
    assert (await _retention(resources, now))["push_deliveries"] == 7
    assert await _delivery_statuses(resources) == {}


@pytest.fixture
async def payload_partitions(resources: Resources) -> AsyncIterator[None]:
    """A test that moves the clock past the payloads' keep drops today's partitions of the shared test
    database: make them again afterwards (what the next real run of the job would do)."""
    yield
    await _partitions(resources, datetime.now(UTC))


async def _batch(resources: Resources, batch_id: uuid.UUID) -> SyncBatch | None:
    async with resources.db.transaction() as session:
        return await session.get(SyncBatch, batch_id)


async def test_upload_status_rows_go_after_their_keep_and_outlive_the_payload(
    client: httpx.AsyncClient, resources: Resources, payload_partitions: None, make_user: MakeUser
) -> None:
    user = await make_user()
    phone = Phone()
    phone.record("habit", "upsert", uuid.uuid4(), 0, {"name": "Read"})
    applied = await push_and_apply(resources, user.id, phone.batch())
    phone.record("habit", "upsert", uuid.uuid4(), 1, {"name": "Walk"})
    waiting = await accept(resources, user.id, phone.batch())  # not merged yet
    found = await _batch(resources, applied)
    assert found is not None
    received = found.received_at
    payload_keep = timedelta(seconds=resources.settings.sync_payload_keep_s)
    status_keep = timedelta(seconds=resources.settings.sync_batch_keep_s)

    # Past the payload's keep: the payload's partition goes only once nothing in it waits for a merge.
    later = received + payload_keep + timedelta(hours=2)
    first = await _partitions(resources, later)
    assert first["sync_batch_payloads"]["kept"] >= 1
    async with resources.db.transaction() as session:
        await session.execute(update(SyncBatch).where(SyncBatch.batch_id == waiting).values(status="applied"))
    second = await _partitions(resources, later)
    assert second["sync_batch_payloads"]["dropped"] >= 1
    async with resources.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(SyncBatchPayload)) == 0

    # The status still answers (the retention run at that time keeps the row: it is recent enough).
    assert (await _retention(resources, later))["sync_batches"] == 0
    answer = await client.get(f"/v1/sync/batches/{applied}", headers=user.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "applied"

    # Past the status row's keep: the finished rows go; an open one would stay.
    async with resources.db.transaction() as session:
        await session.execute(update(SyncBatch).where(SyncBatch.batch_id == waiting).values(status="queued"))
    done = await _retention(resources, received + status_keep + timedelta(minutes=1))
    assert done["sync_batches"] == 1
    assert await _batch(resources, applied) is None
    assert await _batch(resources, waiting) is not None
    gone = await client.get(f"/v1/sync/batches/{applied}", headers=user.headers)
    assert gone.status_code == 404


async def _outbox_ids(resources: Resources) -> set[str]:
    async with resources.db.transaction() as session:
        return set((await session.scalars(select(OutboxRow.job_id))).all())


async def test_outbox_rows_go_once_enqueued_and_old_pending_ones_stay(resources: Resources) -> None:
    now = datetime.now(UTC)
    keep = timedelta(seconds=resources.settings.outbox_keep_s)
    old = now - keep - timedelta(minutes=5)
    rows = {
        "old-enqueued": (old, old + timedelta(seconds=1)),
        "old-pending": (old, None),  # Redis never acknowledged it: the relay still needs it
        "recent-enqueued": (now - timedelta(minutes=5), now - timedelta(minutes=5)),
    }
    async with resources.db.transaction() as session:
        for job_id, (created, enqueued) in rows.items():
            session.add(
                OutboxRow(
                    queue="scheduler",
                    job_name="outbox.relay",
                    job_id=job_id,
                    data={},
                    created_at=created,
                    enqueued_at=enqueued,
                )
            )
    assert (await _retention(resources, now))["outbox"] == 1
    assert await _outbox_ids(resources) == {"old-pending", "recent-enqueued"}


async def test_finished_account_deletions_go_after_their_keep(
    resources: Resources, make_user: MakeUser
) -> None:
    now = datetime.now(UTC)
    keep = timedelta(seconds=resources.settings.account_deletion_keep_s)
    live_user = await make_user()
    rows = [
        AccountDeletion(
            status="done", job_id="old-done", not_before=now - keep - DAY, finished_at=now - keep - DAY
        ),
        AccountDeletion(
            status="cancelled", job_id="old-cancelled", not_before=now - keep, cancelled_at=now - keep - DAY
        ),
        AccountDeletion(status="done", job_id="recent-done", not_before=now - DAY, finished_at=now - DAY),
        AccountDeletion(user_id=live_user.id, status="scheduled", job_id="live", not_before=now - keep - DAY),
    ]
    async with resources.db.transaction() as session:
        session.add_all(rows)
    assert (await _retention(resources, now))["account_deletions"] == 2
    async with resources.db.transaction() as session:
        left = set((await session.scalars(select(AccountDeletion.job_id))).all())
    assert left == {"recent-done", "live"}


async def test_finished_analytics_runs_go_after_their_keep(resources: Resources) -> None:
    now = datetime.now(UTC)
    keep = timedelta(seconds=resources.settings.analytics_run_keep_s)
    old_day = (now - keep - 3 * DAY).date()
    recent_day = (now - DAY).date()
    async with resources.db.transaction() as session:
        session.add_all(
            [
                AnalyticsRun(
                    timezone="UTC", local_date=old_day, status="finished", started_at=now, users_done=1
                ),
                # An old run that never finished: the planner still resumes it.
                AnalyticsRun(
                    timezone="Asia/Tokyo", local_date=old_day, status="running", started_at=now, users_done=0
                ),
                AnalyticsRun(
                    timezone="UTC", local_date=recent_day, status="finished", started_at=now, users_done=1
                ),
            ]
        )
    assert (await _retention(resources, now))["analytics_runs"] == 1
    async with resources.db.transaction() as session:
        left = set((await session.execute(select(AnalyticsRun.timezone, AnalyticsRun.local_date))).all())
    assert {(zone, day) for zone, day in left} == {("Asia/Tokyo", old_day), ("UTC", recent_day)}


async def test_purging_tombstones_while_the_same_user_merges_does_not_deadlock(
    resources: Resources, make_user: MakeUser
) -> None:
    """Regression: the purge deleted the user's tombstones first and moved the user's horizon after, while
    a merge takes the user's lock first and writes the user's rows after — the same two locks in opposite
    orders. Here a merge holds the user's lock while the purge starts, then writes the tombstoned rows."""
    user = await make_user()
    phone = Phone()
    habits = [uuid.uuid4() for _ in range(5)]
    for habit in habits:
        phone.record("habit", "upsert", habit, 0, {"name": "h"})
        phone.record("habit", "delete", habit, 1)
    await push_and_apply(resources, user.id, phone.batch())
    later = datetime.now(UTC) + timedelta(seconds=resources.settings.sync_tombstone_keep_s) + DAY
    purger = Resources.open(resources.settings, application_name="habitjobs-test-purge")
    try:
        async with resources.db.transaction() as merge:
            await merge.execute(
                text("SELECT version FROM user_sync_state WHERE user_id = :u FOR UPDATE"), {"u": user.id}
            )
            purge = asyncio.create_task(_retention(purger, later))

            async def purge_waits() -> bool:
                async with resources.db.transaction() as session:
                    waiting = await session.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                            "'habitjobs-test-purge' AND wait_event_type = 'Lock'"
                        )
                    )
                return bool(waiting)

            await eventually(purge_waits, timeout_s=10)
            # The merge goes on to the user's rows — tombstones included (a deadlock raises here or in
            # the purge: PostgreSQL cancels one transaction of the cycle).
            await merge.execute(
                text("UPDATE habits SET server_version = server_version WHERE user_id = :u"), {"u": user.id}
            )
        done = await purge
        assert done["sync.tombstones"] == len(habits)
    finally:
        await purger.aclose()
