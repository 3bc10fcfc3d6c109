"""Routines and habits CRUD: ownership, validation, tombstones, versions."""

import uuid

import httpx

from tests.support.users import MakeUser


async def test_habit_crud_round_trip(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    routine = await client.post(
        "/v1/routines",
        headers=user.headers,
        json={"kind": "morning", "name": "Morning", "start_local_time": "06:30"},
    )
    assert routine.status_code == 201, routine.text
    routine_id = routine.json()["id"]

    created = await client.post(
        "/v1/habits",
        headers=user.headers,
        json={"name": "Stretch", "kind": "duration", "duration_seconds": 300, "routine_id": routine_id},
    )
    assert created.status_code == 201, created.text
    habit = created.json()
    assert habit["routine_id"] == routine_id

    patched = await client.patch(
        f"/v1/habits/{habit['id']}", headers=user.headers, json={"name": "Stretch well"}
    )
    assert patched.json()["name"] == "Stretch well"
    assert patched.json()["server_version"] > habit["server_version"]

    listed = (await client.get("/v1/habits", headers=user.headers)).json()
    assert [h["name"] for h in listed] == ["Stretch well"]

    assert (await client.delete(f"/v1/habits/{habit['id']}", headers=user.headers)).status_code == 204
    assert (await client.get(f"/v1/habits/{habit['id']}", headers=user.headers)).status_code == 404
    assert (await client.get("/v1/habits", headers=user.headers)).json() == []


async def test_client_chosen_ids_are_kept_and_reuse_is_a_conflict(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    habit_id = str(uuid.uuid4())
    first = await client.post("/v1/habits", headers=user.headers, json={"id": habit_id, "name": "Read"})
    assert first.status_code == 201
    assert first.json()["id"] == habit_id
    second = await client.post("/v1/habits", headers=user.headers, json={"id": habit_id, "name": "Read"})
    assert second.status_code == 409


async def test_someone_elses_rows_are_404_and_untouched(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    alice, mallory = await make_user(), await make_user()
    habit = (await client.post("/v1/habits", headers=alice.headers, json={"name": "Journal"})).json()
    routine = (
        await client.post(
            "/v1/routines", headers=alice.headers, json={"kind": "evening", "name": "Wind down"}
        )
    ).json()

    for method, url, body in [
        ("GET", f"/v1/habits/{habit['id']}", None),
        ("PATCH", f"/v1/habits/{habit['id']}", {"name": "pwned"}),
        ("DELETE", f"/v1/habits/{habit['id']}", None),
        ("GET", f"/v1/routines/{routine['id']}", None),
        ("PATCH", f"/v1/routines/{routine['id']}", {"name": "pwned"}),
        ("DELETE", f"/v1/routines/{routine['id']}", None),
    ]:
        answer = await client.request(method, url, headers=mallory.headers, json=body)
        assert answer.status_code == 404, (method, url)

    # A reference to someone else's routine inside a body is a 422 on that field.
    answer = await client.post(
        "/v1/habits", headers=mallory.headers, json={"name": "sneaky", "routine_id": routine["id"]}
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == "routine_id"

    still = (await client.get(f"/v1/habits/{habit['id']}", headers=alice.headers)).json()
    assert still["name"] == "Journal"
    assert (await client.get("/v1/habits", headers=mallory.headers)).json() == []


async def test_habit_validation(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    cases = [
        ({"name": ""}, "name"),
        ({"name": "x", "kind": "sometimes"}, "kind"),
        ({"name": "x", "days_mask": 128}, "days_mask"),
        ({"name": "x", "kind": "duration"}, "duration_seconds"),
        ({"name": "x", "kind": "quantity"}, "target_value"),
        ({"name": "x", "id": "not-a-uuid"}, "id"),
        ({"name": "x", "position": "first"}, "position"),
    ]
    for body, field in cases:
        answer = await client.post("/v1/habits", headers=user.headers, json=body)
        assert answer.status_code == 422, body
        assert answer.json()["error"]["field"] == field, (body, answer.json())

    habit = (await client.post("/v1/habits", headers=user.headers, json={"name": "Walk"})).json()
    null_name = await client.patch(f"/v1/habits/{habit['id']}", headers=user.headers, json={"name": None})
    assert null_name.status_code == 422
    assert null_name.json()["error"]["field"] == "name"
    assert (await client.get("/v1/habits/not-a-uuid", headers=user.headers)).status_code == 422


async def test_archive_and_detach(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    routine = (
        await client.post("/v1/routines", headers=user.headers, json={"kind": "morning", "name": "AM"})
    ).json()
    habit = (
        await client.post(
            "/v1/habits", headers=user.headers, json={"name": "Water", "routine_id": routine["id"]}
        )
    ).json()
    archived = (
        await client.patch(f"/v1/habits/{habit['id']}", headers=user.headers, json={"archived": True})
    ).json()
    assert archived["archived_at"] is not None
    detached = (
        await client.patch(f"/v1/habits/{habit['id']}", headers=user.headers, json={"routine_id": None})
    ).json()
    assert detached["routine_id"] is None
    assert detached["archived_at"] is not None
