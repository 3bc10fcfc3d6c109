"""Caps on what one user may own: 409 limit_reached over a cap, race-free under concurrent creates, and a
per-mutation rejection (never a batch failure) when a sync upload would go over one."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select

from habitjobs.accounts.models import Device
from habitjobs.config import Settings
from habitjobs.habits.models import Habit, Routine
from habitjobs.reminders.models import Reminder
from habitjobs.resources import Resources
from habitjobs.sync.models import SyncBatch
from tests.support.apps import changed, open_api
from tests.support.sync import Device as Phone
from tests.support.sync import push_and_apply
from tests.support.users import MakeUser

# No rate limits in these tests: they create many rows quickly on purpose.
UNLIMITED: dict[str, Any] = {"rate_limits_enabled": False}


def _habit(i: int) -> tuple[str, str, dict[str, Any]]:
    return "POST", "/v1/habits", {"name": f"habit {i}"}


def _routine(i: int) -> tuple[str, str, dict[str, Any]]:
    return "POST", "/v1/routines", {"kind": "custom", "name": f"routine {i}"}


def _reminder(i: int) -> tuple[str, str, dict[str, Any]]:
    return "POST", "/v1/reminders", {"kind": "morning_routine", "local_time": f"07:{i % 60:02d}"}


def _device(i: int) -> tuple[str, str, dict[str, Any]]:
    return (
        "PUT",
        f"/v1/devices/{uuid.uuid4()}",
        {"platform": "android", "push_token": f"token-{uuid.uuid4().hex}"},
    )


CASES = [
    ("habits", "max_habits_per_user", _habit, Habit),
    ("routines", "max_routines_per_user", _routine, Routine),
    ("reminders", "max_reminders_per_user", _reminder, Reminder),
    ("devices", "max_devices_per_user", _device, Device),
]


async def _owned(resources: Resources, model: Any, user_id: uuid.UUID) -> int:
    async with resources.db.transaction() as session:
        stmt = select(func.count()).select_from(model).where(model.user_id == user_id)
        if model is Device:
            stmt = stmt.where(Device.push_enabled.is_(True))
        else:
            stmt = stmt.where(model.deleted_at.is_(None))
        return int((await session.execute(stmt)).scalar_one())


@pytest.mark.parametrize(("name", "setting", "request_for", "model"), CASES, ids=[c[0] for c in CASES])
async def test_a_create_over_the_cap_is_409_limit_reached(
    settings: Settings,
    resources: Resources,
    make_user: MakeUser,
    name: str,
    setting: str,
    request_for: Any,
    model: Any,
) -> None:
    """Regression: one user created 1,000 habits, 300 devices, 500 reminders."""
    user, other = await make_user(), await make_user()
    async with open_api(settings, **UNLIMITED, **{setting: 3}) as http:
        for i in range(3):
            method, url, body = request_for(i)
            answer = await http.request(method, url, headers=user.headers, json=body)
            assert answer.status_code in (200, 201), answer.text
        method, url, body = request_for(3)
        refused = await http.request(method, url, headers=user.headers, json=body)
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["code"] == "limit_reached"
        assert error["limit"] == name
        assert error["max"] == 3
        assert f"HABITJOBS_{setting.upper()}" in error["message"]
        assert await _owned(resources, model, user.id) == 3
        # Each user has their own allowance.
        method, url, body = request_for(4)
        assert (await http.request(method, url, headers=other.headers, json=body)).status_code in (200, 201)


async def test_deleting_makes_room_again(settings: Settings, make_user: MakeUser) -> None:
    user = await make_user()
    async with open_api(settings, **UNLIMITED, max_habits_per_user=2) as http:
        first = (await http.post("/v1/habits", headers=user.headers, json={"name": "a"})).json()
        await http.post("/v1/habits", headers=user.headers, json={"name": "b"})
        assert (await http.post("/v1/habits", headers=user.headers, json={"name": "c"})).status_code == 409
        # Archived habits still count: they are kept and exported.
        await http.patch(f"/v1/habits/{first['id']}", headers=user.headers, json={"archived": True})
        assert (await http.post("/v1/habits", headers=user.headers, json={"name": "c"})).status_code == 409
        assert (await http.delete(f"/v1/habits/{first['id']}", headers=user.headers)).status_code == 204
        assert (await http.post("/v1/habits", headers=user.headers, json={"name": "c"})).status_code == 201


async def test_a_device_registering_again_at_the_cap_passes_and_disabled_ones_do_not_count(
    settings: Settings, make_user: MakeUser
) -> None:
    user = await make_user()
    ids = [uuid.uuid4() for _ in range(3)]
    async with open_api(settings, **UNLIMITED, max_devices_per_user=2) as http:
        for device_id in ids[:2]:
            answer = await http.put(
                f"/v1/devices/{device_id}",
                headers=user.headers,
                json={"platform": "ios", "push_token": f"tok-{device_id.hex}"},
            )
            assert answer.status_code == 200
        # The app registers again at every start: the same installation is not a new device.
        again = await http.put(
            f"/v1/devices/{ids[0]}", headers=user.headers, json={"platform": "ios", "push_token": "tok-new-1"}
        )
        assert again.status_code == 200
        third = {"platform": "ios", "push_token": f"tok-{ids[2].hex}"}
        assert (await http.put(f"/v1/devices/{ids[2]}", headers=user.headers, json=third)).status_code == 409
        assert (await http.delete(f"/v1/devices/{ids[1]}", headers=user.headers)).status_code == 204
        assert (await http.put(f"/v1/devices/{ids[2]}", headers=user.headers, json=third)).status_code == 200


@pytest.mark.parametrize(("name", "setting", "request_for", "model"), CASES, ids=[c[0] for c in CASES])
async def test_concurrent_creates_at_the_cap_let_exactly_one_through(
    settings: Settings,
    resources: Resources,
    make_user: MakeUser,
    name: str,
    setting: str,
    request_for: Any,
    model: Any,
) -> None:
    user = await make_user()
    async with open_api(settings, **UNLIMITED, **{setting: 5}) as http:
        for i in range(4):
            method, url, body = request_for(i)
            assert (await http.request(method, url, headers=user.headers, json=body)).status_code in (
                200,
                201,
            )

        async def create(i: int) -> int:
            method, url, body = request_for(i)
            return (await http.request(method, url, headers=user.headers, json=body)).status_code

        statuses = await asyncio.gather(*(create(10 + i) for i in range(12)))
    assert sorted(statuses) == sorted([201 if name != "devices" else 200] + [409] * 11), statuses
    assert await _owned(resources, model, user.id) == 5


async def _merged(resources: Resources, user_id: uuid.UUID, upload: dict[str, Any]) -> SyncBatch:
    batch_id = await push_and_apply(resources, user_id, upload)
    async with resources.db.transaction() as session:
        batch = await session.get(SyncBatch, batch_id)
    assert batch is not None
    return batch


async def test_a_sync_create_over_the_cap_is_rejected_alone(
    resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    capped = changed(resources.settings, max_habits_per_user=2, max_reminders_per_user=1)
    res = Resources.open(capped, application_name="habitjobs-test")
    try:
        phone = Phone()
        habits = [uuid.uuid4() for _ in range(3)]
        for i, habit_id in enumerate(habits):
            phone.record("habit", "upsert", habit_id, i, {"name": f"h{i}"})
        phone.record("habit", "patch", habits[2], 5, {"name": "renamed"})
        phone.check(habits[0], date(2026, 3, 2), 6)
        phone.check(habits[2], date(2026, 3, 2), 7)
        for i in range(2):
            phone.record(
                "reminder", "upsert", uuid.uuid4(), 8 + i, {"kind": "evening_routine", "local_time": "21:00"}
            )
        first = await _merged(res, user.id, phone.batch())
        assert first.status == "applied", first.result
        rejected = {r["mutation_id"]: r["code"] for r in first.result["rejected"]}
        # Mutation 3 would create a third habit, 4 patches it, 6 checks it off, 8 is a second reminder.
        assert rejected == {3: "limit_reached", 4: "limit_reached", 6: "unknown_habit", 8: "limit_reached"}
        assert first.result["applied"] == 4
        limit = next(r for r in first.result["rejected"] if r["mutation_id"] == 3)
        assert "HABITJOBS_MAX_HABITS_PER_USER" in limit["message"]

        # The phone's next upload applies; deleting a habit in it makes room for a new one in the same chunk.
        newer = uuid.uuid4()
        phone.record("habit", "delete", habits[1], 20)
        phone.record("habit", "upsert", newer, 21, {"name": "room now"})
        second = await _merged(res, user.id, phone.batch())
        assert second.status == "applied", second.result
        assert second.result["rejected"] == []
        assert await _owned(res, Habit, user.id) == 2
        assert await _owned(res, Reminder, user.id) == 1
    finally:
        await res.aclose()
