"""The minute tick on a simulated clock: one delivery per due local day at the right instant, across DST
changes and odd offsets; racing ticks; a missed tick catching up within the tolerance."""

import asyncio
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import insert, select, text

from habitjobs.accounts.models import Device
from habitjobs.clock import FrozenClock
from habitjobs.config import Settings
from habitjobs.push.models import PushDelivery
from habitjobs.push.templates import Kind
from habitjobs.queue.models import OutboxRow
from habitjobs.reminders.jobs import run_tick
from habitjobs.reminders.models import Reminder
from habitjobs.reminders.schedule import local_instant, spread_offset_s
from habitjobs.resources import Resources
from tests.support.analytics_data import add_entry, add_habit, add_user, run_rollup
from tests.support.reminders import user_with_habit_reminders
from tests.support.users import MakeUser

ZONES = [
    "America/New_York",
    "Europe/Berlin",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Asia/Kathmandu",
]
# Inside the spring-forward gaps and fall-back folds of these zones, plus ordinary times.
TIMES = [time(1, 45), time(2, 30), time(7, 0), time(23, 50)]


async def deliveries(resources: Resources) -> list[PushDelivery]:
    async with resources.db.transaction() as session:
        return list((await session.scalars(select(PushDelivery))).all())


@pytest.mark.parametrize(
    ("start", "hours"),
    [
        # 26 hours around each change: every reminder time happens in it at least once, on both sides.
        (datetime(2026, 3, 7, 18, 0, tzinfo=UTC), 26),  # New York springs forward on 8 March
        (datetime(2026, 4, 4, 8, 0, tzinfo=UTC), 26),  # Sydney and Lord Howe fall back on 5 April
        (datetime(2026, 10, 24, 16, 0, tzinfo=UTC), 26),  # Berlin falls back on 25 October
    ],
    ids=["new-york-spring", "sydney-lord-howe-autumn", "berlin-autumn"],
)
async def test_minute_by_minute_through_a_dst_change(
    resources: Resources, start: datetime, hours: int
) -> None:
    clock = FrozenClock(start)
    resources.clock = clock
    reminders: dict[uuid.UUID, tuple[str, time, uuid.UUID]] = {}
    for zone in ZONES:
        user_id, ids = await user_with_habit_reminders(resources, zone, TIMES, now=start)
        for reminder_id, at in zip(ids, TIMES, strict=True):
            reminders[reminder_id] = (zone, at, user_id)

    produced_at: dict[uuid.UUID, datetime] = {}
    end = start + timedelta(hours=hours)
    while clock.now() < end:
        result = await run_tick(resources)
        if result.deliveries:
            async with resources.db.transaction() as session:
                new = await session.scalars(
                    select(PushDelivery.id).where(PushDelivery.id.not_in(list(produced_at) or [uuid.uuid4()]))
                )
                for delivery in new:
                    produced_at[delivery] = clock.now()
        clock.advance(timedelta(minutes=1))

    got: dict[uuid.UUID, list[date]] = defaultdict(list)
    rows = await deliveries(resources)
    for row in rows:
        _, reminder_key, local_day, _device = row.dedupe_key.split(":")
        got[uuid.UUID(reminder_key)].append(date.fromisoformat(local_day))

    # Expected: every local day whose firing instant lies in the simulated window (after the start, and
    # claimed by a tick before the end: the tick looks one minute ahead).
    async with resources.db.transaction() as session:
        delays = {
            row.data["delivery_ids"][0]: row.delay_ms
            for row in await session.scalars(select(OutboxRow).where(OutboxRow.job_name == "push.send_batch"))
        }
    for reminder_id, (zone_name, at, user_id) in reminders.items():
        tz = ZoneInfo(zone_name)
        expected = []
        day = start.astimezone(tz).date() - timedelta(days=1)
        while day <= end.astimezone(tz).date():
            fire = local_instant(day, at, tz)
            if start < fire <= end - timedelta(minutes=1) + timedelta(seconds=60):
                expected.append((day, fire))
            day += timedelta(days=1)
        assert sorted(got[reminder_id]) == [d for d, _ in expected], (zone_name, at)
        for row in rows:
            if row.dedupe_key.split(":")[1] != str(reminder_id):
                continue
            day = date.fromisoformat(row.dedupe_key.split(":")[2])
            fire = dict(expected)[day]
            tick_at = produced_at[row.id]
            # Produced by the tick of the minute just before (or at) the firing instant…
            assert fire - timedelta(seconds=60) <= tick_at <= fire, (zone_name, at, tick_at, fire)
            # …and sent at the firing instant plus the user's spread offset.
            planned = tick_at + timedelta(milliseconds=delays[str(row.id)]) if str(row.id) in delays else None
            if planned is not None:
                assert abs((planned - fire).total_seconds() - spread_offset_s(str(user_id))) <= 1


async def test_racing_ticks_never_double_send(settings: Settings, resources: Resources) -> None:
    now = datetime(2026, 5, 4, 6, 59, 30, tzinfo=UTC)
    for _ in range(60):
        await user_with_habit_reminders(resources, "UTC", [time(7, 0)], now=now)
    other = Resources.open(settings, application_name="habitjobs-test-2")
    try:
        resources.clock = other.clock = FrozenClock(now)
        # Small chunks so the two interleave over many transactions.
        tiny = Settings(**{**settings.model_dump(), "reminder_chunk": 7})
        resources.settings = other.settings = tiny
        first, second = await asyncio.gather(run_tick(resources), run_tick(other))
    finally:
        await other.aclose()
    assert first.claimed + second.claimed == 60
    assert first.deliveries + second.deliveries == 60
    rows = await deliveries(resources)
    assert len(rows) == 60
    assert len({r.dedupe_key for r in rows}) == 60
    # Running the same minute again finds nothing: next_fire_at moved to tomorrow.
    assert (await run_tick(resources)).claimed == 0


async def test_a_missed_tick_catches_up_within_the_tolerance(resources: Resources) -> None:
    tolerance_s = resources.settings.reminder_tolerance_s
    assert tolerance_s == 900
    start = datetime(2026, 5, 4, 6, 0, tzinfo=UTC)
    _, [on_time] = await user_with_habit_reminders(resources, "UTC", [time(7, 0)], now=start)
    _, [stale] = await user_with_habit_reminders(resources, "UTC", [time(6, 40)], now=start)
    # The worker was down from 06:35 to 07:10: the next tick runs at 07:10.
    resources.clock = FrozenClock(datetime(2026, 5, 4, 7, 10, tzinfo=UTC))
    result = await run_tick(resources)
    assert result.claimed == 2
    assert result.too_late == 1  # 06:40 is 30 minutes late: skipped, not sent late
    [row] = await deliveries(resources)
    assert row.dedupe_key.startswith(f"reminder:{on_time}:2026-05-04:")  # 10 minutes late: still sent
    async with resources.db.transaction() as session:
        rows = (await session.execute(text("SELECT id, next_fire_at FROM reminders"))).all()
        nexts: dict[uuid.UUID, datetime] = {row[0]: row[1] for row in rows}
    assert nexts[on_time] == datetime(2026, 5, 5, 7, 0, tzinfo=UTC)
    assert nexts[stale] == datetime(2026, 5, 5, 6, 40, tzinfo=UTC)


async def test_an_outage_of_days_does_not_replay_every_missed_day(resources: Resources) -> None:
    start = datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
    await user_with_habit_reminders(resources, "UTC", [time(7, 0)], now=start)
    resources.clock = FrozenClock(datetime(2026, 5, 4, 7, 5, tzinfo=UTC))
    result = await run_tick(resources)
    assert result.claimed == 1
    [row] = await deliveries(resources)  # only today's, and only once
    assert ":2026-05-04:" in row.dedupe_key
    assert (await run_tick(resources)).claimed == 0


async def test_nothing_sent_when_already_done_and_routine_finished(
    resources: Resources,
    client: httpx.AsyncClient,
    make_user: MakeUser,
) -> None:
    resources.clock = FrozenClock(datetime(2026, 5, 4, 5, 0, tzinfo=UTC))
    user = await make_user()
    headers = user.headers
    await client.put(
        f"/v1/devices/{uuid.uuid4()}", headers=headers, json={"platform": "android", "push_token": "t" * 20}
    )
    routine = (
        await client.post("/v1/routines", headers=headers, json={"kind": "morning", "name": "AM"})
    ).json()
    habit = (
        await client.post("/v1/habits", headers=headers, json={"name": "Water", "routine_id": routine["id"]})
    ).json()
    for body in (
        {"kind": "habit", "habit_id": habit["id"], "local_time": "07:00"},
        {"kind": "morning_routine", "local_time": "07:00"},
    ):
        assert (await client.post("/v1/reminders", headers=headers, json=body)).status_code == 201
    async with resources.db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO habit_completions (id, user_id, habit_id, local_date, status, client_updated_at)"
                " VALUES (:id, :user, :habit, '2026-05-04', 'done', now())"
            ),
            {"id": uuid.uuid4(), "user": user.id, "habit": habit["id"]},
        )
    resources.clock = FrozenClock(datetime(2026, 5, 4, 7, 0, tzinfo=UTC))
    result = await run_tick(resources)
    assert result.claimed == 2
    assert result.not_relevant == 2  # habit done, routine finished
    assert await deliveries(resources) == []
    # The next day, nothing is done yet: both remind.
    resources.clock = FrozenClock(datetime(2026, 5, 5, 7, 0, tzinfo=UTC))
    result = await run_tick(resources)
    assert result.notified == 2
    kinds = sorted(r.kind for r in await deliveries(resources))
    assert kinds == ["habit_reminder", "morning_routine"]


async def test_streak_at_risk_only_for_a_streak_worth_saving_with_no_entry_today(
    resources: Resources,
) -> None:
    """Streaks come from the real nightly roll-up; the 20:00 alert names the longest streak at risk."""
    today = date(2026, 5, 4)
    created = datetime(2026, 4, 20, tzinfo=UTC)
    users: dict[str, uuid.UUID] = {}
    habits: dict[str, uuid.UUID] = {}
    async with resources.db.transaction() as session:
        # at_risk: two habits, 3-day and 5-day streaks, nothing today: the alert names the 5-day one.
        # done_today: a 3-day streak already extended today. short: a 1-day streak (below the minimum).
        # broken: missed yesterday, so its streak is 0. not_due: the habit is not due on Mondays.
        for name, zone in [
            ("at_risk", "Europe/Berlin"),
            ("done_today", "UTC"),
            ("short", "Asia/Kathmandu"),
            ("broken", "UTC"),
            ("not_due", "UTC"),
        ]:
            users[name] = await add_user(session, zone=zone, created_at=created)
            mask = 0b1111110 if name == "not_due" else 0b1111111  # bit 0 is Monday
            habits[name] = await add_habit(session, users[name], days_mask=mask, created_at=created)
            await session.execute(
                insert(Device).values(
                    id=uuid.uuid4(),
                    user_id=users[name],
                    platform="ios",
                    provider="apns",
                    push_token=uuid.uuid4().hex * 2,
                )
            )
            await session.execute(
                insert(Reminder).values(
                    id=uuid.uuid4(),
                    user_id=users[name],
                    kind="streak_risk",
                    local_time=time(20, 0),
                    client_updated_at=created,
                    server_version=1,
                    next_fire_at=local_instant(today, time(20, 0), ZoneInfo(zone)),
                )
            )
        longer = await add_habit(session, users["at_risk"], created_at=created)
        for back in range(1, 6):
            await add_entry(session, users["at_risk"], longer, today - timedelta(days=back))
        for back in range(1, 4):
            for name in ("at_risk", "done_today"):
                await add_entry(session, users[name], habits[name], today - timedelta(days=back))
        await add_entry(session, users["done_today"], habits["done_today"], today)
        await add_entry(session, users["short"], habits["short"], today - timedelta(days=1))
        for back in range(2, 6):
            await add_entry(session, users["broken"], habits["broken"], today - timedelta(days=back))
        for back in range(1, 4):
            await add_entry(session, users["not_due"], habits["not_due"], today - timedelta(days=back))

    resources.clock = FrozenClock(datetime(2026, 5, 4, 0, 30, tzinfo=UTC))
    for zone in ("Europe/Berlin", "UTC", "Asia/Kathmandu"):
        await run_rollup(resources, zone, today - timedelta(days=1))

    for hour in range(12, 22):  # 20:00 in Kathmandu (14:15 UTC), Berlin (18:00 UTC) and UTC
        for minute in range(0, 60, 5):
            resources.clock = FrozenClock(datetime(2026, 5, 4, hour, minute, tzinfo=UTC))
            await run_tick(resources)

    sent = await deliveries(resources)
    assert [(r.user_id, r.kind) for r in sent] == [(users["at_risk"], Kind.STREAK_AT_RISK.value)]
    assert sent[0].payload["data"]["habit_id"] == str(longer)
    assert "5" in sent[0].payload["body"]
