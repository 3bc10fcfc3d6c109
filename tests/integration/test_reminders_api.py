"""Reminders through the API: validation, ownership, next_fire_at kept right, zone changes."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx

from habitjobs.clock import FrozenClock
from habitjobs.resources import Resources
from tests.support.users import MakeUser


async def test_create_computes_next_fire_in_the_users_zone(
    client: httpx.AsyncClient,
    resources: Resources,
    make_user: MakeUser,
) -> None:
    resources.clock = FrozenClock(datetime(2026, 3, 7, 12, 0, tzinfo=UTC))
    user = await make_user()
    await client.patch("/v1/me", headers=user.headers, json={"timezone": "America/New_York"})
    routine = (
        await client.post("/v1/routines", headers=user.headers, json={"kind": "morning", "name": "AM"})
    ).json()
    created = await client.post(
        "/v1/reminders",
        headers=user.headers,
        json={"kind": "morning_routine", "routine_id": routine["id"], "local_time": "07:00"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    # 07:00 on Sunday 8 March in New York is already daylight time: 11:00 UTC.
    assert body["next_fire_at"] == "2026-03-08T11:00:00Z"
    assert body["timezone"] is None

    # The user moves to Kathmandu (+05:45): the reminder follows, same wall time.
    moved = await client.patch("/v1/me", headers=user.headers, json={"timezone": "Asia/Kathmandu"})
    assert moved.status_code == 200
    after = (await client.get(f"/v1/reminders/{body['id']}", headers=user.headers)).json()
    fire = datetime.fromisoformat(after["next_fire_at"])
    assert fire.astimezone(ZoneInfo("Asia/Kathmandu")).time().isoformat() == "07:00:00"
    assert fire == datetime(2026, 3, 8, 1, 15, tzinfo=UTC)


async def test_own_zone_disable_and_delete(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    resources.clock = FrozenClock(datetime(2026, 6, 1, 0, 0, tzinfo=UTC))
    user = await make_user()
    streak = await client.post(
        "/v1/reminders", headers=user.headers, json={"kind": "streak_risk", "timezone": "Europe/Berlin"}
    )
    assert streak.status_code == 201, streak.text
    body = streak.json()
    assert body["local_time"] == "20:00:00"  # the default alert time
    assert body["next_fire_at"] == "2026-06-01T18:00:00Z"

    off = await client.patch(f"/v1/reminders/{body['id']}", headers=user.headers, json={"enabled": False})
    assert off.json()["next_fire_at"] is None
    weekdays = await client.patch(
        f"/v1/reminders/{body['id']}", headers=user.headers, json={"enabled": True, "days_mask": 0b1000000}
    )
    assert weekdays.json()["next_fire_at"] == "2026-06-07T18:00:00Z"  # the next Sunday
    assert (await client.delete(f"/v1/reminders/{body['id']}", headers=user.headers)).status_code == 204
    assert (await client.get(f"/v1/reminders/{body['id']}", headers=user.headers)).status_code == 404


async def test_validation_and_ownership(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    alice, mallory = await make_user(), await make_user()
    habit = (await client.post("/v1/habits", headers=alice.headers, json={"name": "Read"})).json()
    cases = [
        ({"kind": "habit", "local_time": "07:00"}, "habit_id"),
        (
            {"kind": "habit", "local_time": "07:00", "habit_id": habit["id"], "timezone": "Mars/Base"},
            "timezone",
        ),
        ({"kind": "morning_routine"}, "local_time"),
        ({"kind": "sometimes", "local_time": "07:00"}, "kind"),
        ({"kind": "morning_routine", "local_time": "25:00"}, "local_time"),
        ({"kind": "morning_routine", "local_time": "07:00", "days_mask": 200}, "days_mask"),
    ]
    for body, field in cases:
        answer = await client.post("/v1/reminders", headers=alice.headers, json=body)
        assert answer.status_code == 422, body
        assert answer.json()["error"]["field"] == field, (body, answer.json())

    stolen = await client.post(
        "/v1/reminders",
        headers=mallory.headers,
        json={"kind": "habit", "habit_id": habit["id"], "local_time": "07:00"},
    )
    assert stolen.status_code == 422
    assert stolen.json()["error"]["field"] == "habit_id"

    mine = (
        await client.post(
            "/v1/reminders",
            headers=alice.headers,
            json={"kind": "habit", "habit_id": habit["id"], "local_time": "07:00"},
        )
    ).json()
    for method in ("GET", "PATCH", "DELETE"):
        answer = await client.request(
            method,
            f"/v1/reminders/{mine['id']}",
            headers=mallory.headers,
            json={} if method == "PATCH" else None,
        )
        assert answer.status_code == 404
    assert (await client.get("/v1/reminders", headers=mallory.headers)).json() == []
