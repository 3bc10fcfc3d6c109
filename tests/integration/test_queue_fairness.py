"""Fairness between users in a queue: a user's job waits behind at most one job of each other user with
work queued, never behind another user's backlog; each user's jobs keep their order. The same through
the producer, the outbox after commit, and the outbox relay."""

from __future__ import annotations

import uuid

from sqlalchemy import insert

from habitjobs.queue.models import OutboxRow
from habitjobs.queue.names import DEFAULT
from habitjobs.queue.outbox import StagedJob
from habitjobs.resources import Resources
from tests.support.testjobs import order_key
from tests.support.workers import drain


async def _order(resources: Resources) -> list[str]:
    labels: list[str] = await resources.producer.redis.lrange(
        order_key(resources.settings.queue_prefix), 0, -1
    )
    return labels


def _check_rounds(order: list[str], heavy: int, lights: list[str]) -> None:
    # Every light user's job ran before the heavy user's second one...
    assert order[0] == "heavy-0"
    assert set(order[1 : 1 + len(lights)]) == set(lights), order
    # ...and the heavy user's jobs kept their order.
    assert [label for label in order if label.startswith("heavy")] == [f"heavy-{i}" for i in range(heavy)]


async def test_a_light_users_job_overtakes_a_heavy_users_backlog(job_resources: Resources) -> None:
    """Regression: another user's one export waited 4 min 35 s behind one user's 700."""
    heavy, producer = str(uuid.uuid4()), job_resources.producer
    for i in range(30):
        await producer.enqueue("test.fair", {"label": f"heavy-{i}"}, job_id=f"fair-heavy-{i}", user=heavy)
    lights = [f"light-{n}" for n in range(3)]
    for label in lights:
        await producer.enqueue("test.fair", {"label": label}, job_id=f"fair-{label}", user=str(uuid.uuid4()))
    await drain(job_resources, queues=[DEFAULT], concurrency=1)
    order = await _order(job_resources)
    _check_rounds(order, 30, lights)

    # The heavy user's queue is empty now: their next job is a first one again.
    await producer.enqueue("test.fair", {"label": "heavy-again"}, job_id="fair-heavy-again", user=heavy)
    job = await producer.queue(DEFAULT).getJob("fair-heavy-again")
    assert int(job.opts["priority"]) == 1


async def test_without_fairness_the_backlog_runs_first(job_resources: Resources) -> None:
    """The same enqueues of a job type that is not fair: plain arrival order (what the fair one fixes)."""
    heavy, producer = str(uuid.uuid4()), job_resources.producer
    for i in range(10):
        await producer.enqueue("test.fifo", {"label": f"heavy-{i}"}, job_id=f"fifo-heavy-{i}", user=heavy)
    await producer.enqueue("test.fifo", {"label": "light"}, job_id="fifo-light", user=str(uuid.uuid4()))
    await drain(job_resources, queues=[DEFAULT], concurrency=1)
    assert (await _order(job_resources))[-1] == "light"


async def test_fair_order_through_the_outbox_and_its_relay(job_resources: Resources) -> None:
    heavy = uuid.uuid4()
    outbox = job_resources.outbox
    # Staged in one transaction and enqueued after commit, in one go.
    async with job_resources.db.transaction() as session:
        await outbox.add_many(
            session,
            [StagedJob("test.fair", {"label": f"heavy-{i}"}, f"obx-heavy-{i}", heavy) for i in range(10)],
        )
    async with job_resources.db.transaction() as session:
        await outbox.add(
            session, "test.fair", {"label": "light-0"}, job_id="obx-light-0", user_id=uuid.uuid4()
        )
    # Committed but never enqueued (the process died): the relay enqueues them, fairly too.
    async with job_resources.db.transaction() as session:
        await session.execute(
            insert(OutboxRow),
            [
                {
                    "queue": DEFAULT,
                    "job_name": "test.fair",
                    "job_id": f"obx-heavy-{i}",
                    "data": {"label": f"heavy-{i}"},
                    "user_id": heavy,
                }
                for i in range(10, 15)
            ]
            + [
                {
                    "queue": DEFAULT,
                    "job_name": "test.fair",
                    "job_id": "obx-light-1",
                    "data": {"label": "light-1"},
                    "user_id": uuid.uuid4(),
                }
            ],
        )
    await outbox.settle()  # the rows enqueued after commit are marked so
    assert await outbox.relay(grace_s=0) == 6
    await drain(job_resources, queues=[DEFAULT], concurrency=1)
    _check_rounds(await _order(job_resources), 15, ["light-0", "light-1"])
