"""A server that throttles, sends GOAWAY every 10 answers and closes its socket at once afterwards (nothing
obliges it to wait for the client): the client's next write fails while the last answers and the GOAWAY
are still unread. 1,000 APNs pushes, 10% to dead tokens, five batches in a row: every live device is
reached exactly once, every dead token is disabled, and every job completes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import insert, select

from habitjobs.accounts.models import Device, User
from habitjobs.config import Settings
from habitjobs.push import service
from habitjobs.push.fakes import RunningFakes
from habitjobs.push.models import PushDelivery
from habitjobs.push.schemas import Notification
from habitjobs.queue.inspect import get_job
from habitjobs.queue.names import PUSH
from habitjobs.resources import Resources
from tests.fakes.push import fakes_for_module, settings_for
from tests.support.workers import drain

BATCHES = 5
USERS = 100
DEVICES_PER_USER = 10


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFakes]:
    yield from fakes_for_module(tmp_path_factory, apns_goaway_every=10, latency_ms=2)


@pytest.fixture
async def res(settings: Settings, fakes: RunningFakes) -> AsyncIterator[Resources]:
    # The default job lock (15 s), not the test suite's 2 s: this test is about the push client, and on a
    # loaded machine the fakes (a thread of this process) can hold the loop long enough to cost a 2 s lock.
    resources = Resources.open(
        settings_for(settings, fakes, lock_duration_ms=15_000, stalled_interval_ms=5_000)
    )
    yield resources
    await resources.aclose()


async def seed(res: Resources) -> tuple[list[uuid.UUID], dict[uuid.UUID, str]]:
    users = [uuid.uuid4() for _ in range(USERS)]
    tokens: dict[uuid.UUID, str] = {}
    devices: list[dict[str, object]] = []
    for u, user in enumerate(users):
        for d in range(DEVICES_PER_USER):
            device_id = uuid.uuid4()
            kind = "dead" if (u * DEVICES_PER_USER + d) % 10 == 3 else "ok"
            tokens[device_id] = f"{kind}-{uuid.uuid4().hex}"
            devices.append(
                {
                    "id": device_id,
                    "user_id": user,
                    "platform": "ios",
                    "provider": "apns",
                    "push_token": tokens[device_id],
                    "apns_env": "production",
                }
            )
    async with res.db.transaction() as session:
        await session.execute(insert(User), [{"id": u, "email": f"{u}@example.com"} for u in users])
        await session.execute(insert(Device), devices)
    return users, tokens


async def one_batch(res: Resources, fakes: RunningFakes, batch: int) -> None:
    users, tokens = await seed(res)
    ids: list[uuid.UUID] = []
    goaways_before = fakes.apns.stats.goaways
    async with res.db.transaction() as session:
        for user in users:
            ids += await service.create_deliveries(
                session,
                user,
                Notification.morning_routine(uuid.uuid4(), "Sunrise"),
                dedupe_key=f"goaway:{batch}:{user}",
                not_after=res.clock.now().replace(year=2100),
            )
        job_ids = await service.stage_send(session, res.outbox, ids)
    assert len(ids) == USERS * DEVICES_PER_USER

    await drain(res, queues=[PUSH], timeout_s=90)

    for job_id in job_ids:
        job = await get_job(res.producer, PUSH, job_id)
        assert job is not None
        assert job.state == "completed", (batch, job.state, job.attempts_made, job.failed_reason)
    async with res.db.transaction() as session:
        rows = (
            await session.execute(
                select(PushDelivery.device_id, PushDelivery.status).where(PushDelivery.id.in_(ids))
            )
        ).all()
        enabled = dict(
            (await session.execute(select(Device.id, Device.push_enabled).where(Device.id.in_(tokens)))).all()
        )
    status = dict(rows)
    live = [d for d, t in tokens.items() if t.startswith("ok")]
    dead = [d for d, t in tokens.items() if t.startswith("dead")]
    assert (len(live), len(dead)) == (900, 100)
    assert [d for d in live if status[d] != "sent"] == [], batch
    assert [d for d in dead if status[d] != "token_invalid"] == [], batch
    not_once = {tokens[d]: fakes.log.count(tokens[d]) for d in live if fakes.log.count(tokens[d]) != 1}
    assert not_once == {}, f"batch {batch}: reached other than once: {not_once}; {fakes.apns.stats}"
    assert [d for d in dead if enabled[d]] == []
    assert all(enabled[d] for d in live)
    assert fakes.apns.stats.goaways - goaways_before >= 50  # the server really did go away every 10 answers


@pytest.mark.timeout(600)
async def test_goaway_and_immediate_close_every_ten_answers_five_batches_in_a_row(
    res: Resources, fakes: RunningFakes
) -> None:
    for batch in range(BATCHES):
        await one_batch(res, fakes, batch)
    assert fakes.apns.stats.throttles >= 100  # the stream limit dropped to 1 after rejections, over and over
