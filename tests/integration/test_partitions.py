"""Partition maintenance (``habitjobs.db.partitions``) on a scratch partitioned table: the next partitions
are made ahead, expired ones dropped; a missed run is caught up by the next; a run that dies halfway
leaves a state the next run completes; a partition still needed stays; a drop that cannot get its lock
is left to the next run instead of queueing writers behind it. And the real table through the job and
the CLI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from habitjobs.cli.main import app as cli
from habitjobs.config import Settings
from habitjobs.db import partitions
from habitjobs.resources import Resources
from habitjobs.sync.models import PAYLOAD_PARTITIONS

T0 = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)
AHEAD = timedelta(hours=5)
KEEP = timedelta(hours=3)
SCRATCH = partitions.PartitionedTable("test_timeline", "at")


@pytest.fixture
async def scratch(resources: Resources) -> AsyncIterator[partitions.PartitionedTable]:
    async with resources.db.transaction() as session:
        await session.execute(text("DROP TABLE IF EXISTS test_timeline"))
        await session.execute(
            text("CREATE TABLE test_timeline (at timestamptz NOT NULL, note text) PARTITION BY RANGE (at)")
        )
    yield SCRATCH
    async with resources.db.transaction() as session:
        await session.execute(text("DROP TABLE IF EXISTS test_timeline"))


async def _names(resources: Resources) -> list[str]:
    async with resources.db.transaction() as session:
        return [p.name for p in await partitions.partitions(session, SCRATCH)]


def _expected(now: datetime, since: datetime) -> list[str]:
    """Every period from ``since`` (made by earlier runs) to now + AHEAD, but those expired."""
    start = SCRATCH.floor(since)
    names = []
    while start <= now + AHEAD:
        if start + HOUR > now - KEEP:
            names.append(SCRATCH.partition_name(start))
        start += HOUR
    return names


async def _maintain(resources: Resources, now: datetime, **kwargs: object) -> partitions.Report:
    return await partitions.maintain(resources.db, SCRATCH, now=now, ahead=AHEAD, keep=KEEP, **kwargs)  # type: ignore[arg-type]


async def _insert(resources: Resources, at: datetime) -> None:
    async with resources.db.transaction() as session:
        await session.execute(text("INSERT INTO test_timeline VALUES (:at, 'x')"), {"at": at})


async def test_partitions_are_made_ahead_and_dropped_once_expired(
    resources: Resources, scratch: partitions.PartitionedTable
) -> None:
    first = await _maintain(resources, T0)
    assert len(first.created) == 6  # 12:00 … 17:00
    assert await _names(resources) == [
        SCRATCH.partition_name(T0 - timedelta(minutes=30) + i * HOUR) for i in range(6)
    ]
    await _insert(resources, T0)
    await _insert(resources, T0 + 4 * HOUR)

    # Four hours later: 12:00–13:00 ended more than KEEP ago and goes (with its row); 13:00 stays.
    later = T0 + 4 * HOUR
    report = await _maintain(resources, later)
    assert report.dropped == [SCRATCH.partition_name(T0 - timedelta(minutes=30))]
    assert await _names(resources) == _expected(later, T0)
    async with resources.db.transaction() as session:
        assert (await session.execute(text("SELECT count(*) FROM test_timeline"))).scalar_one() == 1

    # Running again at the same instant changes nothing.
    again = await _maintain(resources, later)
    assert again.as_dict() == {"created": 0, "dropped": 0, "kept": 0, "deferred": 0}


async def test_a_missed_run_is_caught_up_by_the_next(
    resources: Resources, scratch: partitions.PartitionedTable
) -> None:
    await _maintain(resources, T0)
    # The job did not run for three days (workers down): the next run makes every partition due now and
    # ahead, and drops every expired one, in one go.
    late = T0 + timedelta(days=3, minutes=7)
    report = await _maintain(resources, late)
    assert len(report.dropped) == 6
    # (The hours the job missed got no partition: nothing was written in them without one.)
    assert await _names(resources) == _expected(late, late)
    await _insert(resources, late + AHEAD - timedelta(minutes=1))  # writes have a partition up to AHEAD


async def test_a_run_that_dies_halfway_is_completed_by_the_next(
    resources: Resources, scratch: partitions.PartitionedTable
) -> None:
    await _maintain(resources, T0)
    later = T0 + timedelta(hours=10)
    steps = partitions.plan(SCRATCH, await _existing(resources), now=later, ahead=AHEAD, keep=KEEP)
    assert {s.kind for s in steps} == {"create", "drop"}
    # The process dies after some steps (here: each second one of them, in its own transaction, and
    # the others never): every partition is either made or not, dropped or not.
    for step in steps[::2]:
        await partitions.apply_step(resources.db, SCRATCH, step, lock_timeout_ms=1_000)
    # A crash inside a step: its transaction rolls back.
    skipped_drop = next(s for s in steps[1::2] if s.kind == "drop")
    with pytest.raises(RuntimeError, match="killed"):
        await _die_inside(resources, f'DROP TABLE "{skipped_drop.partition.name}"')
    report = await _maintain(resources, later)
    assert len(report.created) + len(report.dropped) == len(steps[1::2])
    assert await _names(resources) == _expected(later, later)


async def _die_inside(resources: Resources, statement: str) -> None:
    async with resources.db.transaction() as session:
        await session.execute(text(statement))
        raise RuntimeError("killed")


async def _existing(resources: Resources) -> list[partitions.Partition]:
    async with resources.db.transaction() as session:
        return await partitions.partitions(session, SCRATCH)


async def test_a_partition_still_needed_stays_until_a_later_run(
    resources: Resources, scratch: partitions.PartitionedTable
) -> None:
    await _maintain(resources, T0)
    needed = {SCRATCH.partition_name(T0 - timedelta(minutes=30))}

    async def still_needed(_session: AsyncSession, start: datetime, _end: datetime) -> bool:
        return SCRATCH.partition_name(start) in needed

    later = T0 + 5 * HOUR
    report = await _maintain(resources, later, still_needed=still_needed)
    assert report.kept == sorted(needed)
    assert len(report.dropped) == 1
    needed.clear()
    assert (await _maintain(resources, later, still_needed=still_needed)).dropped == [
        SCRATCH.partition_name(T0 - timedelta(minutes=30))
    ]


async def test_a_drop_that_waits_for_its_lock_is_left_to_the_next_run(
    resources: Resources, scratch: partitions.PartitionedTable
) -> None:
    await _maintain(resources, T0)
    await _insert(resources, T0)
    oldest = SCRATCH.partition_name(T0 - timedelta(minutes=30))
    reader_started = asyncio.Event()
    release = asyncio.Event()

    async def long_reader() -> None:
        # A long transaction reading the table holds a lock the drop needs.
        async with resources.db.transaction() as session:
            await session.execute(text("SELECT count(*) FROM test_timeline"))
            reader_started.set()
            await release.wait()

    reader = asyncio.create_task(long_reader())
    await reader_started.wait()
    try:
        report = await _maintain(resources, T0 + 5 * HOUR, lock_timeout_ms=200)
    finally:
        release.set()
        await reader
    assert oldest in report.deferred
    assert oldest in await _names(resources)
    assert oldest in (await _maintain(resources, T0 + 5 * HOUR)).dropped


def test_the_cli_lists_and_maintains_the_payload_partitions(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("HABITJOBS_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("HABITJOBS_REDIS_URL", settings.redis_url or "")
    monkeypatch.setenv("HABITJOBS_ENV", "test")
    result = CliRunner().invoke(cli, ["db", "partitions", "--maintain"])
    assert result.exit_code == 0, result.output
    assert "sync_batch_payloads: created" in result.output
    current = PAYLOAD_PARTITIONS.partition_name(PAYLOAD_PARTITIONS.floor(datetime.now(UTC)))
    assert current in result.output
