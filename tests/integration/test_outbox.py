"""The transactional outbox: enqueue after commit, never after a rollback, relay after a crash."""

import subprocess
import sys

import pytest
import redis.exceptions
from sqlalchemy import insert, select

from habitjobs.accounts import service
from habitjobs.queue.inspect import get_job
from habitjobs.queue.models import OutboxRow
from habitjobs.queue.names import DEFAULT
from habitjobs.resources import Resources
from tests.support.users import MakeUser
from tests.support.workers import drain, process_env


async def outbox_row(resources: Resources, job_id: str) -> OutboxRow | None:
    async with resources.db.transaction() as session:
        return await session.scalar(select(OutboxRow).where(OutboxRow.job_id == job_id))


async def test_job_is_enqueued_after_commit_and_marked(resources: Resources, make_user: MakeUser) -> None:
    user = await make_user()
    async with resources.db.transaction() as session:
        export, _ = await service.request_export(session, resources.outbox, user.id)
        # Inside the transaction nothing is in Redis yet.
        assert await resources.producer.queue(DEFAULT).getJob(export.job_id) is None
    assert await get_job(resources.producer, DEFAULT, export.job_id) is not None
    await resources.outbox.settle()  # the mark is written just after the enqueue, off the request's path
    row = await outbox_row(resources, export.job_id)
    assert row is not None
    assert row.enqueued_at is not None
    assert row.user_id == user.id


async def test_rolled_back_transaction_enqueues_nothing(resources: Resources, make_user: MakeUser) -> None:
    user = await make_user()
    staged: list[str] = []

    async def request_then_fail() -> None:
        async with resources.db.transaction() as session:
            export, _ = await service.request_export(session, resources.outbox, user.id)
            staged.append(export.job_id)
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError, match="changed my mind"):
        await request_then_fail()
    [job_id] = staged
    assert await resources.producer.queue(DEFAULT).getJob(job_id) is None
    assert await outbox_row(resources, job_id) is None


async def test_crash_between_commit_and_enqueue_is_repaired_by_the_relay(
    resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.crash_between_commit_and_enqueue", str(user.id)],
        env=process_env(resources.settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 17, proc.stderr
    job_id = proc.stdout.strip()
    row = await outbox_row(resources, job_id)
    assert row is not None, "the commit happened"
    assert row.enqueued_at is None
    assert await resources.producer.queue(DEFAULT).getJob(job_id) is None, "the enqueue did not"

    assert await resources.outbox.relay(grace_s=0) == 1
    assert await resources.outbox.relay(grace_s=0) == 0  # acknowledged: not relayed twice
    await drain(resources, queues=[DEFAULT])
    view = await get_job(resources.producer, DEFAULT, job_id)
    assert view is not None
    assert view.state == "completed"


async def test_relay_leaves_young_rows_to_their_request(resources: Resources, make_user: MakeUser) -> None:
    user = await make_user()
    async with resources.db.transaction() as session:
        await session.execute(
            insert(OutboxRow).values(
                queue=DEFAULT,
                job_name="accounts.export_data",
                job_id="export-young",
                data={"export_id": str(user.id)},
                user_id=user.id,
            )
        )
    assert await resources.outbox.relay(grace_s=60) == 0
    assert await resources.outbox.relay(grace_s=0) == 1


async def test_relay_keeps_rows_pending_while_redis_is_unreachable(
    resources: Resources, make_user: MakeUser
) -> None:
    from habitjobs.config import Settings
    from habitjobs.queue.outbox import Outbox
    from habitjobs.queue.producer import Producer

    user = await make_user()
    async with resources.db.transaction() as session:
        await session.execute(
            insert(OutboxRow).values(
                queue=DEFAULT,
                job_name="accounts.export_data",
                job_id="export-later",
                data={"export_id": str(user.id)},
                user_id=user.id,
            )
        )
    dead = Settings(**{**resources.settings.model_dump(), "redis_url": "redis://127.0.0.1:1/0"})
    producer = Producer(dead, resources.registry)
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            await Outbox(resources.db, producer).relay(grace_s=0)
    finally:
        await producer.close()
    row = await outbox_row(resources, "export-later")
    assert row is not None
    assert row.enqueued_at is None
    assert row.relay_attempts == 1
    assert "Connect" in (row.last_error or "") or "connect" in (row.last_error or "")
    assert await resources.outbox.relay(grace_s=0) == 1
