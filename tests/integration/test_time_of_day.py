"""A time of day is ``HH:MM[:SS]`` without an offset: what the document says is what the API does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.support.users import ApiUser

MakeUser = Callable[..., Awaitable[ApiUser]]


@pytest.mark.parametrize("bad", ["07:00:00Z", "07:00+02:00", "25:00", "7 am"])
async def test_a_bad_time_of_day_is_a_422_naming_the_field(
    client: httpx.AsyncClient, make_user: MakeUser, bad: str
) -> None:
    user = await make_user()
    reminder = await client.post(
        "/v1/reminders", headers=user.headers, json={"kind": "streak_risk", "local_time": bad}
    )
    assert reminder.status_code == 422, reminder.text
    assert reminder.json()["error"]["field"] == "local_time"
    routine = await client.post(
        "/v1/routines",
        headers=user.headers,
        json={"kind": "morning", "name": "Morning", "start_local_time": bad},
    )
    assert routine.status_code == 422, routine.text
    assert routine.json()["error"]["field"] == "start_local_time"


async def test_a_time_of_day_comes_back_as_hh_mm_ss(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    created = await client.post(
        "/v1/reminders", headers=user.headers, json={"kind": "streak_risk", "local_time": "21:30"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["local_time"] == "21:30:00"
    listed = await client.get("/v1/reminders", headers=user.headers)
    assert [r["local_time"] for r in listed.json()] == ["21:30:00"]
