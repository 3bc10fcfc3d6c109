"""The merge against real PostgreSQL: last-writer-wins, tombstones, field-level patches, ownership,
sequencing, chunks, dirty marks, the recompute hook and retention."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text, update

from habitjobs.catalog import all_jobs
from habitjobs.clock import FrozenClock
from habitjobs.config import Settings
from habitjobs.errors import RetryLater
from habitjobs.habits.models import FocusSession, Habit, HabitCompletion, Routine
from habitjobs.queue.names import ANALYTICS, SYNC
from habitjobs.queue.registry import Registry
from habitjobs.resources import JobContext, Resources
from habitjobs.sync import service
from habitjobs.sync.entities import completion_id
from habitjobs.sync.models import StatsDirtyDay, StreakDirty, SyncBatch, SyncBatchPayload, SyncClient
from habitjobs.sync.schemas import BatchOut
from tests.support import stores
from tests.support.sync import T0, Device, accept, apply, body, push_and_apply
from tests.support.users import MakeUser
from tests.support.workers import drain

DAY = date(2026, 3, 2)


async def _row(resources: Resources, model: Any, entity_id: uuid.UUID) -> Any:
    async with resources.db.transaction() as session:
        return await session.get(model, entity_id)


async def _status(resources: Resources, batch_id: uuid.UUID) -> BatchOut:
    async with resources.db.transaction() as session:
        return BatchOut.of(await service.get_batch(session, (await _owner(session, batch_id)), batch_id))


async def _owner(session: Any, batch_id: uuid.UUID) -> uuid.UUID:
    batch = await session.get(SyncBatch, batch_id)
    return batch.user_id  # type: ignore[no-any-return]


async def _habit(resources: Resources, user_id: uuid.UUID, phone: Device, **data: Any) -> uuid.UUID:
    habit_id = uuid.uuid4()
    phone.record("habit", "upsert", habit_id, 0, {"name": "Meditate", **data})
    await push_and_apply(resources, user_id, phone.batch())
    return habit_id


async def test_newer_write_wins_older_is_ignored_and_ties_go_to_the_higher_writer(
    resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    a, b = Device(client_id="a-phone"), Device(client_id="b-phone")
    habit_id = await _habit(resources, user.id, a)
    cid = a.check(habit_id, DAY, 10, value="1")
    await push_and_apply(resources, user.id, a.batch())

    b.check(habit_id, DAY, 5, value="2")  # older: loses
    stale = await push_and_apply(resources, user.id, b.batch())
    assert (await _status(resources, stale)).ignored_stale == 1
    assert (await _row(resources, HabitCompletion, cid)).value == 1

    b.check(habit_id, DAY, 10, value="3")  # same instant, writer "b-phone" > "a-phone": wins
    await push_and_apply(resources, user.id, b.batch())
    row = await _row(resources, HabitCompletion, cid)
    assert (row.value, row.device_id) == (3, "b-phone")

    a.check(habit_id, DAY, 10, value="4")  # same instant, lower writer: loses
    await push_and_apply(resources, user.id, a.batch())
    assert (await _row(resources, HabitCompletion, cid)).value == 3

    b.check(habit_id, DAY, 10, value="5")  # the same writer at the same instant: its later mutation wins
    await push_and_apply(resources, user.id, b.batch())
    assert (await _row(resources, HabitCompletion, cid)).value == 5


async def test_check_uncheck_tombstones_and_a_newer_check_revives(
    resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    phone = Device()
    habit_id = await _habit(resources, user.id, phone)
    cid = phone.check(habit_id, DAY, 10)
    phone.uncheck(habit_id, DAY, 11)
    await push_and_apply(resources, user.id, phone.batch())
    row = await _row(resources, HabitCompletion, cid)
    assert row is not None
    assert row.deleted_at == T0 + timedelta(seconds=11)
    version_when_deleted = row.server_version

    phone.check(habit_id, DAY, 12, status="skipped")
    await push_and_apply(resources, user.id, phone.batch())
    row = await _row(resources, HabitCompletion, cid)
    assert row.deleted_at is None
    assert row.status == "skipped"
    assert row.server_version > version_when_deleted

    # Deleting a row that was never uploaded: nothing to tombstone, the client learns it.
    ghost = phone.uncheck(habit_id, date(2026, 1, 1), 13)
    batch = await push_and_apply(resources, user.id, phone.batch())
    status = await _status(resources, batch)
    assert [(r.code, r.field) for r in status.rejected] == [("not_found", "id")]
    assert await _row(resources, HabitCompletion, ghost) is None


async def test_settings_merge_field_by_field_and_deletion_wins(
    resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    a, b = Device(), Device()
    habit_id = await _habit(resources, user.id, a)

    b.record("habit", "patch", habit_id, 20, {"position": 7})
    a.record("habit", "patch", habit_id, 10, {"name": "Breathe"})  # older, but another field: kept
    a.record("habit", "patch", habit_id, 11, {"position": 3})  # older than b's position: lost
    await push_and_apply(resources, user.id, b.batch())
    batch = await push_and_apply(resources, user.id, a.batch())
    status = await _status(resources, batch)
    assert (status.applied, status.ignored_stale) == (1, 1)
    habit = await _row(resources, Habit, habit_id)
    assert (habit.name, habit.position) == ("Breathe", 7)
    assert habit.client_updated_at == T0 + timedelta(seconds=20)

    # A full upsert is a patch of every field: newer fields win, older ones stay.
    a.record("habit", "upsert", habit_id, 15, {"name": "Box breathing", "position": 1, "days_mask": 31})
    await push_and_apply(resources, user.id, a.batch())
    habit = await _row(resources, Habit, habit_id)
    assert (habit.name, habit.position, habit.days_mask) == ("Box breathing", 7, 31)

    b.record("habit", "delete", habit_id, 1)  # the oldest clock of all, still deletes
    a.record("habit", "patch", habit_id, 99, {"name": "Too late"})
    await push_and_apply(resources, user.id, b.batch())
    late = await push_and_apply(resources, user.id, a.batch())
    assert (await _status(resources, late)).ignored_stale == 1
    habit = await _row(resources, Habit, habit_id)
    assert habit.deleted_at == T0 + timedelta(seconds=1)
    assert habit.name == "Box breathing"


async def test_api_edits_are_respected_by_offline_patches(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    resources.clock = FrozenClock(T0 + timedelta(seconds=50))
    created = await client.post("/v1/habits", headers=user.headers, json={"name": "Walk", "position": 2})
    habit_id = uuid.UUID(created.json()["id"])
    phone = Device()
    phone.record("habit", "patch", habit_id, 40, {"name": "Stroll"})  # before the API write: loses
    phone.record("habit", "patch", habit_id, 60, {"position": 5})  # after it: wins
    await push_and_apply(resources, user.id, phone.batch())
    habit = await _row(resources, Habit, habit_id)
    assert (habit.name, habit.position) == ("Walk", 5)

    await client.patch(
        f"/v1/habits/{habit_id}", headers=user.headers, json={"name": "Hike"}
    )  # at T0+50 again
    phone.record("habit", "patch", habit_id, 55, {"name": "Ramble"})
    await push_and_apply(resources, user.id, phone.batch())
    habit = await _row(resources, Habit, habit_id)
    assert habit.name == "Ramble"  # newer than the API's rename


async def test_deleting_a_habit_tombstones_its_completions_and_refuses_new_ones(
    resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    a, b = Device(), Device()
    habit_id = await _habit(resources, user.id, a)
    first = a.check(habit_id, DAY, 5)
    await push_and_apply(resources, user.id, a.batch())

    a.record("habit", "delete", habit_id, 10)
    batch = await push_and_apply(resources, user.id, a.batch())
    status = await _status(resources, batch)
    completion = await _row(resources, HabitCompletion, first)
    assert completion.deleted_at == T0 + timedelta(seconds=10)
    habit = await _row(resources, Habit, habit_id)
    assert completion.server_version == habit.server_version
    assert status.cursor == str(habit.server_version)

    b.check(habit_id, date(2026, 3, 3), 20)
    late = await push_and_apply(resources, user.id, b.batch())
    assert [r.code for r in (await _status(resources, late)).rejected] == ["habit_deleted"]


async def test_content_problems_reject_one_mutation_and_the_rest_applies(
    resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    phone = Device()
    habit_id = await _habit(resources, user.id, phone)
    good = phone.check(habit_id, DAY, 1)
    phone.record("alarm", "upsert", uuid.uuid4(), 1, {})
    phone.record("habit_completion", "patch", good, 1, {"status": "skipped"})
    phone.record("habit", "upsert", "not-a-uuid", 1, {"name": "x"})
    phone.record("habit", "upsert", uuid.uuid4(), "2026-03-02T06:00:00", {"name": "x"})
    phone.record("habit", "upsert", uuid.uuid4(), 1, {"name": ""})
    phone.record("habit", "upsert", uuid.uuid4(), 1, {"name": "Run", "kind": "duration"})
    phone.record("habit", "patch", habit_id, 1, {"name": None})
    phone.record("habit", "patch", habit_id, 1, {})
    phone.record(
        "habit_completion", "upsert", uuid.uuid4(), 1, {"habit_id": str(habit_id), "local_date": "2026-03-03"}
    )
    phone.record(
        "habit_completion",
        "upsert",
        completion_id(habit_id, date(2026, 3, 4)),
        1,
        {"habit_id": str(habit_id), "local_date": "2026-03-04", "tz": "Mars/Olympus"},
    )
    phone.record(
        "focus_session",
        "upsert",
        uuid.uuid4(),
        1,
        {
            "started_at": "2026-03-02T07:00:00Z",
            "ended_at": "2026-03-02T06:00:00Z",
            "local_date": "2026-03-02",
        },
    )
    phone.record("habit", "upsert", uuid.uuid4(), 1, {"name": "Ok", "colour": "red"})
    also_good = phone.check(habit_id, date(2026, 3, 5), 1, tz="Europe/Berlin", value="2.50")
    batch = await push_and_apply(resources, user.id, phone.batch())

    status = await _status(resources, batch)
    assert status.status == "applied"
    assert status.applied == 2
    assert [(r.mutation_id - status.first_mutation_id, r.code, r.field) for r in status.rejected] == [
        (1, "unknown_entity", "entity"),
        (2, "unsupported_op", "op"),
        (3, "invalid_id", "id"),
        (4, "invalid_timestamp", "client_updated_at"),
        (5, "invalid_data", "data.name"),
        (6, "invalid_data", "data"),
        (7, "invalid_data", "data.name"),
        (8, "invalid_data", "data"),
        (9, "invalid_id", "id"),
        (10, "invalid_data", "data.tz"),
        (11, "invalid_data", "data"),
        (12, "invalid_data", "data.colour"),
    ]
    assert status.last_mutation_id == status.first_mutation_id + status.mutation_count - 1
    row = await _row(resources, HabitCompletion, also_good)
    assert (row.tz, str(row.value)) == ("Europe/Berlin", "2.50")
    assert (await _row(resources, HabitCompletion, good)).status == "done"


async def test_nobody_writes_another_users_rows(resources: Resources, make_user: MakeUser) -> None:
    alice, mallory = await make_user(), await make_user()
    phone, evil = Device(), Device()
    routine_id = uuid.uuid4()
    phone.record("routine", "upsert", routine_id, 0, {"kind": "morning", "name": "AM"})
    habit_id = uuid.uuid4()
    phone.record("habit", "upsert", habit_id, 0, {"name": "Journal", "routine_id": str(routine_id)})
    cid = phone.check(habit_id, DAY, 0)
    await push_and_apply(resources, alice.id, phone.batch())
    before = {
        m: await _row(resources, m, i)
        for m, i in [(Routine, routine_id), (Habit, habit_id), (HabitCompletion, cid)]
    }

    evil.record("habit", "upsert", habit_id, 999, {"name": "pwned"})
    evil.record("habit", "patch", habit_id, 999, {"name": "pwned"})
    evil.record("habit", "delete", habit_id, 999)
    evil.record("routine", "delete", routine_id, 999)
    evil.uncheck(habit_id, DAY, 999)
    evil.check(habit_id, date(2026, 3, 9), 999)
    evil.record("habit", "upsert", uuid.uuid4(), 999, {"name": "mine", "routine_id": str(routine_id)})
    batch = await push_and_apply(resources, mallory.id, evil.batch())

    status = await _status(resources, batch)
    assert [r.code for r in status.rejected] == ["id_conflict"] * 5 + ["unknown_habit", "unknown_routine"]
    for model, entity_id in [(Routine, routine_id), (Habit, habit_id), (HabitCompletion, cid)]:
        after = await _row(resources, model, entity_id)
        assert (after.user_id, after.server_version, after.deleted_at) == (
            alice.id,
            before[model].server_version,
            None,
        )
    assert (await _row(resources, Habit, habit_id)).name == "Journal"
    assert await _row(resources, HabitCompletion, completion_id(habit_id, date(2026, 3, 9))) is None


async def test_a_habit_can_point_at_a_routine_uploaded_later(
    resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    phone = Device()
    routine_id, habit_id = uuid.uuid4(), uuid.uuid4()
    phone.record("habit", "upsert", habit_id, 0, {"name": "Floss", "routine_id": str(routine_id)})
    await push_and_apply(resources, user.id, phone.batch())
    assert (await _row(resources, Habit, habit_id)).routine_id == routine_id


async def test_many_edits_of_one_row_in_one_batch(resources: Resources, make_user: MakeUser) -> None:
    user = await make_user()
    phone = Device()
    habit_id = await _habit(resources, user.id, phone)
    for n in range(30):
        if n % 3 == 2:
            phone.uncheck(habit_id, DAY, n)
        else:
            phone.check(habit_id, DAY, n, value=str(n))
    session_id = uuid.uuid4()
    for n in range(5):
        phone.record(
            "focus_session",
            "upsert",
            session_id,
            100 - n,
            {"started_at": "2026-03-02T07:00:00Z", "focus_seconds": n, "local_date": "2026-03-02"},
        )
    batch = await push_and_apply(resources, user.id, phone.batch())
    status = await _status(resources, batch)
    assert (status.applied, status.ignored_stale) == (31, 4)
    row = await _row(resources, HabitCompletion, completion_id(habit_id, DAY))
    assert (row.deleted_at is None, row.value) == (False, 28)
    assert (await _row(resources, FocusSession, session_id)).focus_seconds == 0


async def test_clocks_running_ahead_are_clamped(resources: Resources, make_user: MakeUser) -> None:
    user = await make_user()
    fast, honest = Device(), Device()
    habit_id = await _habit(resources, user.id, honest)
    cid = fast.check(habit_id, DAY, 10 * 365 * 24 * 3600, value="1")  # ten years ahead
    await push_and_apply(resources, user.id, fast.batch())
    row = await _row(resources, HabitCompletion, cid)
    async with resources.db.transaction() as session:
        received = (
            await session.scalars(select(SyncBatch.received_at).order_by(SyncBatch.received_at.desc()))
        ).first()
    assert received is not None
    assert row.client_updated_at == received + timedelta(seconds=resources.settings.sync_max_clock_skew_s)
    # An honest edit made after the clamp point wins over the fast phone's "future" write.
    later = (row.client_updated_at - T0).total_seconds() + 1
    honest.check(habit_id, DAY, later, value="2")
    await push_and_apply(resources, user.id, honest.batch())
    assert (await _row(resources, HabitCompletion, cid)).value == 2


async def test_replayed_and_overlapping_batches_apply_nothing_twice(
    resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    phone = Device()
    habit_id = await _habit(resources, user.id, phone)
    for n in range(4):
        phone.check(habit_id, date(2026, 3, 1 + n), n)
    upload = phone.batch()
    first = await push_and_apply(resources, user.id, upload)
    again = await apply(resources, first)  # the same job running a second time
    assert again["status"] == "applied"

    phone.check(habit_id, date(2026, 3, 9), 9)
    overlap = {
        **upload,
        "batch_id": str(uuid.uuid4()),
        "mutations": [*upload["mutations"], *phone.batch()["mutations"]],
    }
    batch = await push_and_apply(resources, user.id, overlap)
    status = await _status(resources, batch)
    assert (status.applied, status.already_applied, status.last_mutation_id) == (1, 4, 6)


async def test_an_upload_merges_the_earlier_one_it_needs_and_a_real_gap_fails(
    resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    phone = Device()
    habit_id = uuid.uuid4()
    phone.record("habit", "upsert", habit_id, 0, {"name": "A"})
    early = await accept(resources, user.id, phone.batch())
    phone.check(habit_id, DAY, 1)
    late = await accept(resources, user.id, phone.batch())

    # The later upload's job runs first: it merges the earlier upload (mutation 1) before its own.
    result = await apply(resources, late)
    assert (result["status"], result["helped"]) == ("applied", 1)
    assert (await _status(resources, early)).applied == 1
    assert (await _status(resources, late)).applied == 1
    assert (await apply(resources, early))["status"] == "applied"  # its own job finds nothing left

    # Mutations 3 to 7 were never uploaded: wait once (an upload may be in flight), then fail.
    phone.next_id += 5
    phone.check(habit_id, date(2026, 3, 3), 2)
    orphan = await accept(resources, user.id, phone.batch())
    with pytest.raises(RetryLater):
        await apply(resources, orphan)
    await apply(resources, orphan, attempt=2)
    status = await _status(resources, orphan)
    assert status.status == "failed"
    assert status.gap is not None
    assert (status.gap.expected, status.gap.found, status.last_mutation_id) == (3, 8, 2)
    assert status.error is not None
    assert status.error.startswith("mutation_gap")

    # Only an upload holding the missing mutation is merged first; another one is left to its own job.
    def patch(mutation_id: int) -> dict[str, Any]:
        return {
            "mutation_id": mutation_id,
            "entity": "habit",
            "op": "patch",
            "id": str(habit_id),
            "client_updated_at": "2026-03-02T06:00:00Z",
            "data": {"name": f"v{mutation_id}"},
        }

    unrelated = await accept(resources, user.id, body(phone.client_id, [patch(10)]))
    waiting = await accept(resources, user.id, body(phone.client_id, [*(patch(n) for n in range(10, 13))]))
    await apply(resources, waiting, attempt=2)
    assert (await _status(resources, waiting)).status == "failed"
    assert (await _status(resources, unrelated)).status == "queued"
    assert (await _row(resources, Habit, habit_id)).name == "A"


@pytest.fixture
def chunky_resources(settings: Settings) -> Callable[[int], Awaitable[Resources]]:
    async def make(chunk: int) -> Resources:
        return Resources.open(
            settings.model_copy(update={"sync_chunk_mutations": chunk}), application_name="t"
        )

    return make


async def test_big_batches_merge_in_chunks_and_resume_where_they_stopped(
    chunky_resources: Callable[[int], Awaitable[Resources]], make_user: MakeUser
) -> None:
    res = await chunky_resources(4)
    try:
        user = await make_user()
        phone = Device()
        habit_id = uuid.uuid4()
        phone.record("habit", "upsert", habit_id, 0, {"name": "Read"})
        days = [date(2026, 2, 1) + timedelta(days=n) for n in range(10)]
        for n, day in enumerate(days):
            phone.check(habit_id, day, n)
        batch_id = await accept(res, user.id, phone.batch())

        # One chunk commits, then the process "dies" (the loop is simply not continued).
        async with res.db.transaction() as session:
            work = await service.load_batch(session, res.settings, batch_id)
        assert work is not None
        async with res.db.transaction() as session:
            step = await service.merge_next_chunk(
                session, res.settings, work, may_wait=False, now=res.clock.now()
            )
        assert (step.done, step.status, step.result["last_mutation_id"]) == (False, "processing", 4)
        status = await _status(res, batch_id)
        assert (status.status, status.applied) == ("processing", 4)

        result = await apply(res, batch_id)  # the retried job picks up at mutation 5
        assert result["status"] == "applied"
        status = await _status(res, batch_id)
        assert (status.applied, status.already_applied, status.ignored_stale, status.rejected) == (
            11,
            0,
            0,
            [],
        )
        async with res.db.transaction() as session:
            versions = (
                await session.scalars(
                    select(HabitCompletion.server_version).where(HabitCompletion.user_id == user.id)
                )
            ).all()
            client = await session.get(SyncClient, (user.id, phone.client_id))
        assert len(versions) == 10
        assert len(set(versions)) == 3
        assert client is not None
        assert client.last_mutation_id == 11
    finally:
        await res.aclose()


async def test_merges_leave_dirty_marks(resources: Resources, make_user: MakeUser) -> None:
    user = await make_user()
    phone = Device()
    habit_id = await _habit(resources, user.id, phone, created_local_date="2026-01-01")
    phone.check(habit_id, date(2026, 3, 5), 1)
    phone.check(habit_id, date(2026, 3, 3), 2)
    focus = uuid.uuid4()
    phone.record(
        "focus_session",
        "upsert",
        focus,
        3,
        {"started_at": "2026-03-01T07:00:00Z", "focus_seconds": 60, "local_date": "2026-03-01"},
    )
    await push_and_apply(resources, user.id, phone.batch())
    phone.record(
        "focus_session",
        "upsert",
        focus,
        4,
        {"started_at": "2026-03-01T07:00:00Z", "focus_seconds": 60, "local_date": "2026-02-28"},
    )
    phone.record("habit", "patch", habit_id, 5, {"name": "Renamed"})
    await push_and_apply(resources, user.id, phone.batch())

    async with resources.db.transaction() as session:
        days = set(
            (
                await session.scalars(
                    select(StatsDirtyDay.local_date).where(StatsDirtyDay.user_id == user.id)
                )
            ).all()
        )
        streaks = (await session.execute(select(StreakDirty.habit_id, StreakDirty.from_date))).all()
    assert days == {date(2026, 3, 5), date(2026, 3, 3), date(2026, 3, 1), date(2026, 2, 28)}
    assert streaks == [(habit_id, date(2026, 3, 3))]  # the earliest mark; a rename changes no streak

    phone.record("habit", "patch", habit_id, 6, {"days_mask": 1})
    await push_and_apply(resources, user.id, phone.batch())
    async with resources.db.transaction() as session:
        streaks = (await session.execute(select(StreakDirty.habit_id, StreakDirty.from_date))).all()
    assert streaks == [(habit_id, date(2026, 1, 1))]  # new due days: the whole history


async def test_the_recompute_hook_is_debounced_and_waits_without_its_job_type(
    settings: Settings, resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    phone = Device()
    habit_id = uuid.uuid4()
    phone.record("habit", "upsert", habit_id, 0, {"name": "Read"})
    await push_and_apply(resources, user.id, phone.batch())  # a new habit marks nothing
    analytics = resources.producer.queue(ANALYTICS)
    assert await analytics.getJobCounts("delayed") == {"delayed": 0}
    for n in range(3):
        phone.check(habit_id, date(2026, 3, 1 + n), n)
        await push_and_apply(resources, user.id, phone.batch())
    assert await analytics.getJobCounts("delayed", "waiting") == {"delayed": 1, "waiting": 0}

    # A worker without the analytics job type: the marks are stored, nothing is enqueued.
    registry = Registry([s for s in all_jobs() if s.name != "analytics.recompute_user"])
    bare = Resources.open(
        settings.model_copy(update={"queue_prefix": settings.queue_prefix + "b"}), registry=registry
    )
    try:
        other = await make_user()
        habit_id = uuid.uuid4()
        phone = Device()
        phone.record("habit", "upsert", habit_id, 0, {"name": "Read"})
        phone.check(habit_id, DAY, 1)
        await push_and_apply(bare, other.id, phone.batch())
        assert await bare.producer.queue(ANALYTICS).getJobCounts("delayed", "waiting") == {
            "delayed": 0,
            "waiting": 0,
        }
        async with bare.db.transaction() as session:
            marked = (
                await session.scalars(
                    select(StatsDirtyDay.local_date).where(StatsDirtyDay.user_id == other.id)
                )
            ).all()
        assert marked == [DAY]
    finally:
        await stores.delete_prefix(settings.redis_url or "", settings.queue_prefix + "b")
        await bare.aclose()


async def test_purge_moves_the_horizon_and_old_cursors_must_reset(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    phone = Device()
    habit_id = await _habit(resources, user.id, phone)
    old_cursor = (await client.get("/v1/sync/pull", headers=user.headers)).json()["cursor"]
    phone.check(habit_id, DAY, 1)
    phone.uncheck(habit_id, DAY, 2)
    phone.check(habit_id, date(2026, 3, 3), 3)
    await push_and_apply(resources, user.id, phone.batch())
    current = (await client.get("/v1/sync/pull", headers=user.headers, params={"cursor": old_cursor})).json()

    resources.clock = FrozenClock(datetime.now(UTC) + timedelta(days=3650))
    spec = resources.registry.get("maintenance.retention")
    ctx = JobContext("purge-1", spec.name, spec.queue, 1, 1, resources)
    result = await spec.handler(ctx, spec.parse({}))
    # One tombstone (the unchecked completion) and both uploads' status rows.
    assert result["sync.tombstones"] == 1
    assert result["sync_batches"] == 2
    assert await _row(resources, HabitCompletion, completion_id(habit_id, DAY)) is None

    stale = (await client.get("/v1/sync/pull", headers=user.headers, params={"cursor": old_cursor})).json()
    assert stale["reset_required"] is True
    fine = (
        await client.get("/v1/sync/pull", headers=user.headers, params={"cursor": current["cursor"]})
    ).json()
    assert fine["reset_required"] is False


async def test_a_batch_that_cannot_be_merged_is_marked_failed_when_its_job_fails(
    resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    phone = Device()
    phone.record("habit", "upsert", uuid.uuid4(), 0, {"name": "x"})
    batch_id = await accept(resources, user.id, phone.batch())
    async with resources.db.transaction() as session:
        await session.execute(
            update(SyncBatchPayload)
            .where(SyncBatchPayload.batch_id == batch_id)
            .values(payload=[{"not": "a mutation"}])
        )
    with pytest.raises(Exception, match="payload"):
        await apply(resources, batch_id)
    assert (await _status(resources, batch_id)).status == "queued"  # the handler leaves the batch alone…
    await drain(resources, queues=[SYNC])  # …the job's final failure (here: at once) settles it
    status = await _status(resources, batch_id)
    assert status.status == "failed"
    assert (status.error or "").startswith("job_failed: ")
    assert "payload" in (status.error or "")
    async with resources.db.transaction() as session:
        assert (await session.execute(text("SELECT count(*) FROM habits"))).scalar_one() == 0
