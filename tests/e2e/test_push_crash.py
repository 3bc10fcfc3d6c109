"""A worker process is SIGKILLed in the middle of a push batch. After another worker recovers the job:
no device got the same notification twice, except deliveries whose outcome was not yet recorded when the
worker died (their lease expired mid-send; the resend carries the same collapse id), and reminders whose
moment passed during the outage are skipped, not sent late."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, update

from habitjobs.accounts.models import Device, User
from habitjobs.config import Settings
from habitjobs.push import service
from habitjobs.push.fakes import RunningFakes
from habitjobs.push.models import PushDelivery
from habitjobs.push.schemas import Notification
from habitjobs.queue.names import PUSH
from habitjobs.resources import Resources
from tests.fakes.push import eventually, fakes_for_module, settings_for
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.slow

LEASE_S = 3
FRESH, STALE = 300, 200


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFakes]:
    # 20 ms per push and 10 streams: a 500-push batch takes about a second, long enough to kill mid-way.
    yield from fakes_for_module(tmp_path_factory, latency_ms=20)


@pytest.fixture
async def res(settings: Settings, fakes: RunningFakes) -> AsyncIterator[Resources]:
    resources = Resources.open(settings_for(settings, fakes, push_lease_s=LEASE_S))
    yield resources
    await resources.aclose()


def worker(res: Resources, fakes: RunningFakes, log: Path) -> WorkerProcess:
    return WorkerProcess(
        res.settings,
        log,
        "--queue",
        PUSH,
        env={
            **fakes.env,
            "HABITJOBS_PUSH_LEASE_S": str(LEASE_S),
            "HABITJOBS_PUSH_APNS_CONNECTIONS": "1",
            "HABITJOBS_PUSH_APNS_MAX_STREAMS": "10",
        },
    )


async def seed(res: Resources) -> tuple[dict[uuid.UUID, str], dict[uuid.UUID, str]]:
    """One iPhone per user: FRESH users with a reminder good for an hour, STALE ones good for 2 seconds."""
    tokens = {uuid.uuid4(): f"ok-{uuid.uuid4().hex}" for _ in range(FRESH + STALE)}
    async with res.db.transaction() as session:
        await session.execute(insert(User), [{"id": u, "email": f"{u}@example.com"} for u in tokens])
        await session.execute(
            insert(Device),
            [
                {
                    "id": u,
                    "user_id": u,
                    "platform": "ios",
                    "provider": "apns",
                    "push_token": t,
                    "apns_env": "production",
                }
                for u, t in tokens.items()
            ],
        )
    users = list(tokens)
    return {u: tokens[u] for u in users[:FRESH]}, {u: tokens[u] for u in users[FRESH:]}


@pytest.mark.timeout(90)
async def test_a_worker_killed_mid_batch_duplicates_only_unrecorded_sends_and_skips_stale_ones(
    res: Resources, fakes: RunningFakes, tmp_path: Path
) -> None:
    fresh, stale = await seed(res)
    first = worker(res, fakes, tmp_path / "first.log")
    second: WorkerProcess | None = None
    try:
        await first.wait_started()
        ids: list[uuid.UUID] = []
        async with res.db.transaction() as session:
            for user in [*fresh, *stale]:
                ids += await service.create_deliveries(
                    session,
                    user,
                    Notification.morning_routine(uuid.uuid4(), "Sunrise"),
                    dedupe_key=f"reminder:{user}:2026-03-09",
                    not_after=res.clock.now() + timedelta(hours=1),
                )
            # The stale users' reminder is worth showing for 2 more seconds only (set after the slow
            # part of the set-up, so that the batch starts well inside that window).
            stale_until = res.clock.now() + timedelta(seconds=2)
            await session.execute(
                update(PushDelivery)
                .where(PushDelivery.device_id.in_(list(stale)))
                .values(not_after=stale_until)
            )
            (job_id,) = await service.stage_send(session, res.outbox, ids)

        async def mid_batch() -> bool:
            """100 pushes out and some outcomes already written: the batch is well under way."""
            if sum(fakes.log.count(t) for t in fresh.values()) < 100:
                return False
            async with res.db.transaction() as session:
                sent = await session.scalar(select(func.count()).where(PushDelivery.status == "sent"))
            return (sent or 0) >= 20

        await eventually(mid_batch, timeout_s=20)
        first.signal(signal.SIGKILL)
        assert await first.wait_exit() == -signal.SIGKILL
        killed = time.monotonic()

        async with res.db.transaction() as session:
            at_kill = dict((await session.execute(select(PushDelivery.device_id, PushDelivery.status))).all())
        arrived = {u for u, t in fresh.items() if fakes.log.count(t) > 0}  # the worker is dead: final
        recorded_sent = {u for u in fresh if at_kill[u] == "sent"}
        # Sent, but the worker died before writing it down: the only deliveries that may arrive twice.
        unrecorded = {u for u in arrived if at_kill[u] == "sending"}
        assert recorded_sent <= arrived
        assert len(recorded_sent) >= 20  # outcomes are written while the batch is still running…
        assert len(arrived) < FRESH  # …which it was when the worker died
        assert {at_kill[u] for u in stale} == {"sending"}  # leased, not yet sent
        assert sum(fakes.log.count(t) for t in stale.values()) == 0

        # The outage outlasts the stale reminders' relevance and the lease.
        await asyncio.sleep(max(0.0, (stale_until - res.clock.now()).total_seconds()) + 0.2)
        second = worker(res, fakes, tmp_path / "second.log")
        await second.wait_started()

        async def finished() -> bool:
            async with res.db.transaction() as session:
                open_rows = await session.scalar(
                    select(PushDelivery.id).where(PushDelivery.status.in_(("pending", "sending"))).limit(1)
                )
            return open_rows is None

        await eventually(finished, timeout_s=30)
        recovered_after = time.monotonic() - killed

        async with res.db.transaction() as session:
            final = dict((await session.execute(select(PushDelivery.device_id, PushDelivery.status))).all())
            collapse = dict(
                (await session.execute(select(PushDelivery.device_id, PushDelivery.collapse_id))).all()
            )
        assert all(final[u] == "sent" for u in fresh)
        assert all(final[u] == "skipped" for u in stale)
        assert sum(fakes.log.count(t) for t in stale.values()) == 0  # stale reminders never sent late

        counts = {u: fakes.log.count(t) for u, t in fresh.items()}
        assert min(counts.values()) == 1  # everyone got it
        duplicated = {u for u, n in counts.items() if n > 1}
        # Exactly the sends whose lease expired unrecorded came twice; a recorded send never repeats.
        assert duplicated == unrecorded
        assert all(counts[u] == 1 for u in recorded_sent)
        for user in duplicated:
            assert counts[user] == 2
            assert {r.collapse_id for r in fakes.log.received(fresh[user])} == {collapse[user]}
        assert recovered_after < 30
        print(
            f"\nkilled with {len(recorded_sent)} sends recorded and {len(unrecorded)} unrecorded; "
            f"{len(duplicated)} duplicates (same collapse id); {job_id} recovered in {recovered_after:.1f}s"
        )
    finally:
        first.kill()
        if second is not None:
            second.signal(signal.SIGTERM)
            await second.wait_exit()
