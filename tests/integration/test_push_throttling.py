"""A batch of 1,000 APNs pushes, 10% to dead tokens, against a server that drops its stream limit to 1 after
every rejection and sends GOAWAY every 200 streams: it completes, every live device gets exactly one
delivery marked sent (and the server saw it exactly once), no duplicates, no hang."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import func, insert, select

from habitjobs.accounts.models import Device, User
from habitjobs.config import Settings
from habitjobs.push import service
from habitjobs.push.fakes import RunningFakes
from habitjobs.push.models import PushDelivery
from habitjobs.push.schemas import Notification
from habitjobs.queue.names import PUSH
from habitjobs.resources import Resources
from tests.fakes.push import fakes_for_module, settings_for
from tests.support.workers import drain

USERS = 100
DEVICES_PER_USER = 10


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFakes]:
    yield from fakes_for_module(tmp_path_factory, apns_goaway_every=200, latency_ms=3)


@pytest.fixture
async def res(settings: Settings, fakes: RunningFakes) -> AsyncIterator[Resources]:
    resources = Resources.open(settings_for(settings, fakes))
    yield resources
    await resources.aclose()


async def seed(res: Resources) -> tuple[list[uuid.UUID], dict[uuid.UUID, str]]:
    """100 users with 10 iPhones each; every 10th token is dead."""
    users = [uuid.uuid4() for _ in range(USERS)]
    tokens: dict[uuid.UUID, str] = {}
    devices = []
    for u, user in enumerate(users):
        for d in range(DEVICES_PER_USER):
            device_id = uuid.uuid4()
            kind = "dead" if (u * DEVICES_PER_USER + d) % 10 == 7 else "ok"
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


@pytest.mark.timeout(90)
async def test_a_thousand_pushes_through_throttling_and_goaway_each_exactly_once(
    res: Resources, fakes: RunningFakes
) -> None:
    users, tokens = await seed(res)
    ids: list[uuid.UUID] = []
    async with res.db.transaction() as session:  # what a reminder tick does
        for user in users:
            ids += await service.create_deliveries(
                session,
                user,
                Notification.morning_routine(uuid.uuid4(), "Sunrise"),
                dedupe_key=f"reminder:{user}:2026-03-09",
                not_after=res.clock.now().replace(year=2100),
            )
        job_ids = await service.stage_send(session, res.outbox, ids)
    assert len(ids) == 1000
    assert len(job_ids) == 2

    started = time.monotonic()
    await drain(res, queues=[PUSH], timeout_s=60)
    elapsed = time.monotonic() - started

    async with res.db.transaction() as session:
        rows = (await session.execute(select(PushDelivery.device_id, PushDelivery.status))).all()
        errors = dict((await session.execute(select(PushDelivery.device_id, PushDelivery.last_error))).all())
        per_device = dict(
            (
                await session.execute(
                    select(PushDelivery.device_id, func.count()).group_by(PushDelivery.device_id)
                )
            ).all()
        )
        enabled = dict((await session.execute(select(Device.id, Device.push_enabled))).all())
    assert set(per_device.values()) == {1}  # one delivery row per device, no duplicates
    status = dict(rows)
    live = [d for d, t in tokens.items() if t.startswith("ok")]
    dead = [d for d, t in tokens.items() if t.startswith("dead")]
    assert (len(live), len(dead)) == (900, 100)
    assert [d for d in live if status[d] != "sent"] == []
    assert [d for d in dead if status[d] != "token_invalid"] == []
    twice = {
        tokens[d]: (fakes.log.count(tokens[d]), errors[d]) for d in live if fakes.log.count(tokens[d]) != 1
    }
    assert twice == {}, f"arrived other than once (last error of each): {twice}; {fakes.apns.stats}"
    assert all(fakes.log.count(tokens[d]) == 0 for d in dead)
    assert not any(enabled[d] for d in dead)
    assert all(enabled[d] for d in live)

    stats = fakes.apns.stats
    assert stats.rejected == 100
    assert stats.throttles >= 50  # the limit really did drop to 1, over and over
    assert stats.goaways >= 2  # each connection was told to go away at least once
    print(f"\n1,000 pushes in {elapsed:.2f}s; server stats: {stats}")
