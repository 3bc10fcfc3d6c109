"""Group commit of uploads: many pushes, few transactions, and one bad upload never fails the others."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select, text

from habitjobs.errors import NotFound, Unauthorized
from habitjobs.queue.models import OutboxRow
from habitjobs.resources import Resources
from habitjobs.sync import service
from habitjobs.sync.intake import Intake
from habitjobs.sync.models import SyncBatch
from habitjobs.sync.schemas import PushIn
from tests.support.sync import Device, body
from tests.support.users import MakeUser


def _upload(resources: Resources, user_id: uuid.UUID, batch_id: uuid.UUID | None = None) -> service.Upload:
    phone = Device()
    phone.record("habit", "upsert", uuid.uuid4(), 0, {"name": "Read"})
    upload = body(phone.client_id, phone.batch()["mutations"], batch_id)
    return service.prepare_push(resources.settings, user_id, PushIn.model_validate(upload))


async def test_concurrent_uploads_are_stored_together_and_each_gets_its_job(
    resources: Resources, make_user: MakeUser
) -> None:
    users = [await make_user() for _ in range(4)]
    intake = Intake(resources.db, resources.outbox)
    uploads = [_upload(resources, users[n % 4].id) for n in range(24)]
    results = await asyncio.gather(*(intake.store(u) for u in uploads))

    assert all(created for _, created in results)
    assert [b.batch_id for b, _ in results] == [u.batch_id for u in uploads]
    async with resources.db.transaction() as session:
        arrivals = (await session.scalars(select(SyncBatch.received_at))).all()
        staged = await session.scalar(select(func.count()).select_from(OutboxRow))
    assert len(arrivals) == 24
    assert staged == 24
    # One transaction stamps one now(): far fewer distinct arrival times than uploads.
    assert len(set(arrivals)) <= 2
    for batch, _ in results:
        assert await resources.producer.queue("sync").getJob(batch.job_id) is not None


async def test_one_bad_upload_in_a_group_fails_alone(resources: Resources, make_user: MakeUser) -> None:
    alice, bob, gone = await make_user(), await make_user(), await make_user()
    async with resources.db.transaction() as session:
        await session.execute(text("DELETE FROM users WHERE id = :id"), {"id": gone.id})
    taken = _upload(resources, alice.id)
    intake = Intake(resources.db, resources.outbox)
    assert (await intake.store(taken))[1] is True

    same = uuid.uuid4()
    uploads = [
        _upload(resources, alice.id),
        _upload(resources, gone.id),  # its user was deleted: refused, the rest of the group is stored
        _upload(resources, bob.id, taken.batch_id),  # someone else's batch id
        _upload(resources, bob.id, same),
        _upload(resources, bob.id, same),  # the same upload twice in one group
        _upload(resources, alice.id, taken.batch_id),  # alice retrying her stored batch
    ]
    outcomes = await asyncio.gather(*(intake.store(u) for u in uploads), return_exceptions=True)

    assert outcomes[0][1] is True  # type: ignore[index]
    assert isinstance(outcomes[1], Unauthorized)
    assert isinstance(outcomes[2], NotFound)  # answered like a batch nobody has
    assert sorted(o[1] for o in outcomes[3:5]) == [False, True]  # type: ignore[index]
    assert outcomes[5][1] is False  # type: ignore[index]
    assert outcomes[5][0].batch_id == taken.batch_id  # type: ignore[index]
    async with resources.db.transaction() as session:
        owners = dict((await session.execute(select(SyncBatch.batch_id, SyncBatch.user_id))).all())
        jobs = await session.scalar(select(func.count()).select_from(OutboxRow))
    assert owners[taken.batch_id] == alice.id
    assert owners[same] == bob.id
    assert len(owners) == 3
    assert jobs == 3


async def test_a_request_that_goes_away_still_has_its_upload_stored(
    resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    intake = Intake(resources.db, resources.outbox)
    upload = _upload(resources, user.id)
    waiting = asyncio.create_task(intake.store(upload))
    await asyncio.sleep(0)  # queued
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    later = await intake.store(_upload(resources, user.id))  # the intake keeps working
    assert later[1] is True
    await intake.idle()  # the abandoned upload's group may still be in flight beside the later one
    async with resources.db.transaction() as session:
        assert await session.get(SyncBatch, upload.batch_id) is not None
