"""The analytics jobs on a real worker: the planner's deterministic, state-based enqueues across odd
offsets, progress on the job, the sweep of forgotten dirty marks, statement timeouts."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from habitjobs.analytics import jobs as analytics_jobs
from habitjobs.analytics import repository as repo
from habitjobs.clock import FrozenClock
from habitjobs.queue.names import ANALYTICS
from habitjobs.resources import Resources
from tests.support.analytics_data import add_entry, add_habit, add_user, daily, job_context
from tests.support.workers import drain

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


async def _plan(resources: Resources) -> dict[str, int]:
    ctx = job_context(resources, analytics_jobs.PLAN_JOB)
    result: dict[str, int] = await analytics_jobs.plan(ctx, analytics_jobs.Plan())
    return result


async def _queued_ids(resources: Resources) -> set[str]:
    jobs = await resources.producer.queue(ANALYTICS).getJobs(["waiting", "delayed", "active", "completed"])
    return {str(job.id) for job in jobs}


async def test_the_planner_enqueues_each_ended_zone_day_once_then_nothing(resources: Resources) -> None:
    zones = ["UTC", "America/New_York", "Asia/Kathmandu", "Pacific/Chatham"]
    async with resources.db.transaction() as s:
        for zone in zones:
            user = await add_user(s, zone=zone)
            habit = await add_habit(s, user)
            await add_entry(s, user, habit, date(2026, 3, 9))
    resources.clock = FrozenClock(NOW)  # 08:00 in New York, 17:45 in Kathmandu, 01:45 on the 11th in Chatham

    assert await _plan(resources) == {"rollups": 8, "stale_recomputes": 0}
    expected = {
        "daily-UTC-2026-03-08",
        "daily-UTC-2026-03-09",
        "daily-America_New_York-2026-03-08",
        "daily-America_New_York-2026-03-09",
        "daily-Asia_Kathmandu-2026-03-08",
        "daily-Asia_Kathmandu-2026-03-09",
        "daily-Pacific_Chatham-2026-03-09",
        "daily-Pacific_Chatham-2026-03-10",
    }
    assert await _queued_ids(resources) == expected
    await _plan(resources)  # a second tick before the worker ran: the same ids, no second job
    assert await resources.producer.queue(ANALYTICS).getJobCounts("waiting") == {"waiting": 8}

    await drain(resources, queues=[ANALYTICS])
    job = await resources.producer.queue(ANALYTICS).getJob("daily-Pacific_Chatham-2026-03-10")
    assert job is not None
    assert job.progress == {"zone": "Pacific/Chatham", "local_date": "2026-03-10", "users": 1, "chunks": 1}
    assert job.returnvalue["status"] == "finished"
    async with resources.db.transaction() as s:
        statuses = (await s.execute(text("SELECT status, count(*) FROM analytics_runs GROUP BY 1"))).all()
    assert statuses == [("finished", 8)]
    assert await _plan(resources) == {"rollups": 0, "stale_recomputes": 0}


async def test_forgotten_dirty_marks_are_swept_into_a_recompute(resources: Resources) -> None:
    resources.clock = FrozenClock(NOW)
    async with resources.db.transaction() as s:
        user = await add_user(s, zone="UTC")
        habit = await add_habit(s, user)
        await add_entry(s, user, habit, date(2026, 3, 9))
        fresh = await add_user(s, zone="UTC")
        # A merge marked these days, but its recompute request was lost (an hour ago) or is still
        # waiting out its debounce (a moment ago).
        await s.execute(
            text(
                "INSERT INTO stats_dirty_days (user_id, local_date, marked_at) VALUES "
                "(:u, DATE '2026-03-09', now() - interval '1 hour'), (:f, DATE '2026-03-09', now())"
            ),
            {"u": user, "f": fresh},
        )
        await s.execute(
            text(
                "INSERT INTO analytics_runs SELECT 'UTC', d, 'finished', now(), now(), 0 "
                "FROM unnest(ARRAY[DATE '2026-03-08', DATE '2026-03-09']) AS d"
            )
        )
    assert await _plan(resources) == {"rollups": 0, "stale_recomputes": 1}
    await drain(resources, queues=[ANALYTICS])
    assert (await daily(resources, user))[date(2026, 3, 9)].habits_done == 1
    async with resources.db.transaction() as s:
        left = (await s.execute(text("SELECT user_id FROM stats_dirty_days"))).scalars().all()
    assert left == [fresh]


async def test_analytics_statements_are_cut_off_by_the_timeout(resources: Resources) -> None:
    async with resources.db.transaction() as s:
        await repo.tune_transaction(s, 50)
        with pytest.raises(DBAPIError, match="statement timeout"):
            await s.execute(text("SELECT pg_sleep(0.5)"))
        await s.rollback()
    # The limit was local to that transaction.
    async with resources.db.transaction() as s:
        assert await s.scalar(text("SELECT pg_sleep(0.1)::text")) == ""
