"""Other people's ids and values at and beyond every edge: nothing moves, nothing wedges, nothing 500s.

One regression test per defect found by trying the API as an attacker and a careless client would,
and a property test: uploads full of extreme values end ``applied`` with exactly the expected
rejections, the phone's next upload applies, and everything written reads back through every route and
the export.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from habitjobs.accounts import service as accounts
from habitjobs.config import Settings
from habitjobs.dashboard.routes import COOKIE
from habitjobs.dashboard.sessions import for_settings as sessions_for
from habitjobs.db import migrate
from habitjobs.resources import Resources
from habitjobs.sync.entities import completion_id
from habitjobs.sync.models import SyncBatch
from tests.support.analytics_data import run_recompute
from tests.support.sync import Device, accept, apply, ts
from tests.support.users import ApiUser

MakeUser = Callable[..., Awaitable[ApiUser]]


async def _batch(resources: Resources, batch_id: uuid.UUID) -> SyncBatch:
    async with resources.db.transaction() as session:
        batch = await session.get(SyncBatch, batch_id)
        assert batch is not None
        return batch


async def _push(resources: Resources, user: ApiUser, upload: dict[str, Any]) -> SyncBatch:
    batch_id = await accept(resources, user.id, upload)
    await apply(resources, batch_id)
    return await _batch(resources, batch_id)


async def _export(resources: Resources, user_id: uuid.UUID) -> dict[str, Any]:
    """Request and build the user's export (what its job does); the document."""
    settings_ = resources.settings
    async with resources.db.transaction() as session:
        export, _ = await accounts.request_export(session, resources.outbox, user_id)
    async with resources.db.transaction() as session:
        await accounts.build_export(
            session,
            export.id,
            resources.clock.now(),
            max_bytes=settings_.export_max_bytes,
            keep_s=settings_.export_keep_s,
        )
    async with resources.db.transaction() as session:
        done = await accounts.get_export(session, user_id, export.id, resources.clock.now())
        assert done.status == "done", done.error
        assert done.document is not None
        return done.document


async def _post_json(client: httpx.AsyncClient, url: str, payload: Any, user: ApiUser) -> httpx.Response:
    """Sent as Python's json module writes it, as a careless client may: lone surrogates escaped,
    infinity as ``Infinity`` (httpx itself refuses both)."""
    headers = {**user.headers, "content-type": "application/json"}
    return await client.post(url, content=json.dumps(payload), headers=headers)


# --- devices --------------------------------------------------------------------------------------


async def test_another_users_device_id_is_404_and_the_row_stays(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    alice, mallory = await make_user(), await make_user()
    device_id = uuid.uuid4()
    put = await client.put(
        f"/v1/devices/{device_id}",
        json={"platform": "ios", "push_token": "alice-token-123"},
        headers=alice.headers,
    )
    assert put.status_code == 200
    before = (await client.get("/v1/devices", headers=alice.headers)).json()
    taken = await client.put(
        f"/v1/devices/{device_id}",
        json={"platform": "android", "push_token": "mallory-token-456"},
        headers=mallory.headers,
    )
    assert taken.status_code == 404, taken.text
    assert taken.json()["error"]["code"] == "not_found"
    nobody = await client.put(
        f"/v1/devices/{uuid.uuid4()}",
        json={"platform": "android", "push_token": "mallory-token-789"},
        headers=mallory.headers,
    )
    assert nobody.status_code == 200  # a fresh id is simply registered
    assert (await client.get("/v1/devices", headers=alice.headers)).json() == before
    assert str(device_id) not in {
        d["id"] for d in (await client.get("/v1/devices", headers=mallory.headers)).json()
    }
    # The token of Alice's device was not taken either (that transaction rolled back).
    again = await client.put(
        f"/v1/devices/{device_id}",
        json={"platform": "ios", "push_token": "alice-token-123"},
        headers=mallory.headers,
    )
    assert again.status_code == 404
    assert (await client.get("/v1/devices", headers=alice.headers)).json()[0]["push_enabled"] is True


async def test_one_push_token_registered_concurrently_on_many_devices(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """The token ends on exactly one enabled installation — the last one registered — and no call fails."""
    alice, bob = await make_user(), await make_user()
    token = f"shared-{uuid.uuid4().hex}"
    calls = [
        client.put(
            f"/v1/devices/{uuid.uuid4()}",
            json={"platform": "android", "push_token": token},
            headers=(alice if i % 2 else bob).headers,
        )
        for i in range(20)
    ]
    answers = await asyncio.gather(*calls)
    assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers if a.status_code != 200]
    devices = [
        d
        for user in (alice, bob)
        for d in (await client.get("/v1/devices", headers=user.headers)).json()
        if d["push_token_tail"] == token[-6:]
    ]
    enabled = [d for d in devices if d["push_enabled"]]
    assert len(devices) == 20
    assert len(enabled) == 1
    assert {d["invalid_reason"] for d in devices if not d["push_enabled"]} == {"token_moved"}


# --- API values -----------------------------------------------------------------------------------


async def test_unstorable_text_is_422_naming_the_field(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    h = user.headers
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/v1/habits", {"name": "a\u0000b"}, "name"),
        ("POST", "/v1/routines", {"kind": "custom", "name": "a\u0000b"}, "name"),
        ("PATCH", "/v1/me", {"display_name": "a\u0000b"}, "display_name"),
        (
            "PUT",
            f"/v1/devices/{uuid.uuid4()}",
            {"platform": "ios", "push_token": "abcdefgh1", "app_version": "1\u0000"},
            "app_version",
        ),
        ("POST", "/v1/habits", {"name": "x", "created_local_date": "0001-01-01"}, "created_local_date"),
        (
            "POST",
            "/v1/routines",
            {"kind": "custom", "name": "x", "start_local_time": "07:00+14:00"},
            "start_local_time",
        ),
        ("POST", "/v1/reminders", {"kind": "streak_risk", "local_time": "20:00-14:00"}, "local_time"),
    ]
    for method, url, payload, field in cases:
        answer = await client.request(method, url, json=payload, headers=h)
        assert answer.status_code == 422, (url, answer.text)
        assert answer.json()["error"]["field"] == field


async def test_edges_of_query_and_path_values_are_4xx(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    admin = await make_user(admin=True)
    weekly = await client.get("/v1/stats/weekly?from=0001-01-01&to=0001-01-01", headers=user.headers)
    assert weekly.status_code == 422, weekly.text
    assert weekly.json()["error"]["field"] == "from"
    daily = await client.get("/v1/stats/daily?from=2026-01-01&to=9999-12-31", headers=user.headers)
    assert daily.status_code == 422, daily.text
    job = await client.get("/v1/jobs/a%00b", headers=user.headers)
    assert job.status_code == 422, job.text
    assert job.json()["error"]["field"] == "job_id"
    page = await client.get(f"/admin/queues/default/jobs?page={2**63}", headers=admin.headers)
    assert page.status_code == 422, page.text
    assert page.json()["error"]["field"] == "page"
    last = await client.get("/admin/queues/default/jobs?page=1000000", headers=admin.headers)
    assert last.status_code == 200
    # The dashboard's job lists (an administrator's session cookie) bound their page the same way.
    cookie, _ = await sessions_for(resources.producer.redis, resources.settings).open(admin.id)
    client.cookies.set(COOKIE, cookie, domain="api.test", path="/admin")
    for path in ("jobs", "fragments/jobs"):
        listed = await client.get(f"/admin/{path}/default/failed?page={10**30}")
        assert listed.status_code == 422, listed.text
    client.cookies.clear()
    for cursor in ("%00", "9" * 40, "1.99999999999999999999.x", "-1"):
        pull = await client.get(f"/v1/sync/pull?cursor={cursor}", headers=user.headers)
        assert pull.status_code in (200, 422), pull.text


# --- sync -----------------------------------------------------------------------------------------


async def test_a_timestamp_beyond_the_range_is_rejected_alone(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    """0001-01-01T00:00:00+14:00 is year 0 in UTC: it used to fail the merge at every attempt."""
    user = await make_user()
    phone = Device()
    bad, good = uuid.uuid4(), uuid.uuid4()
    phone.record("habit", "upsert", bad, "0001-01-01T00:00:00+14:00", {"name": "Wedge"})
    phone.record("habit", "upsert", good, 1, {"name": "Fine"})
    first = await _push(resources, user, phone.batch())
    assert first.status == "applied", first.error
    assert first.result["applied"] == 1
    [rejected] = first.result["rejected"]
    assert (rejected["mutation_id"], rejected["code"], rejected["field"]) == (
        1,
        "invalid_timestamp",
        "client_updated_at",
    )
    phone.record("habit", "patch", good, 2, {"name": "Later"})
    second = await _push(resources, user, phone.batch())
    assert second.status == "applied"
    assert second.result["applied"] == 1
    names = {h["name"] for h in (await client.get("/v1/habits", headers=user.headers)).json()}
    assert names == {"Later"}


async def test_an_archived_at_beyond_the_range_is_rejected_alone(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    phone = Device()
    habit = uuid.uuid4()
    phone.record("habit", "upsert", habit, 0, {"name": "A", "archived_at": "9999-12-31T23:59:59-14:00"})
    phone.record("habit", "upsert", uuid.uuid4(), 0, {"name": "B", "archived_at": "2099-12-31T23:59:59Z"})
    batch = await _push(resources, user, phone.batch())
    assert batch.status == "applied"
    assert [(r["mutation_id"], r["field"]) for r in batch.result["rejected"]] == [(1, "data.archived_at")]
    assert (await client.get("/v1/habits", headers=user.headers)).status_code == 200
    assert len((await _export(resources, user.id))["habits"]) == 1


async def test_instants_stored_beyond_the_range_are_repaired_by_the_migration(
    client: httpx.AsyncClient, resources: Resources, settings: Settings, make_user: MakeUser
) -> None:
    """Rows written before the checks existed: year 10000 in UTC could not be read back at all."""
    user = await make_user()
    created = await client.post("/v1/habits", json={"name": "Old"}, headers=user.headers)
    habit_id = created.json()["id"]
    async with resources.db.transaction() as session:
        await session.execute(
            text(
                "UPDATE habits SET archived_at = TIMESTAMPTZ '9999-12-31 23:59:59-14:00', "
                "client_updated_at = TIMESTAMPTZ '0001-01-01 00:00:00+14:00' WHERE id = :id"
            ),
            {"id": uuid.UUID(habit_id)},
        )
    url = settings.database_url
    assert url is not None
    await asyncio.to_thread(migrate.downgrade, url, "0011-1")  # the revision before 0011
    await asyncio.to_thread(migrate.upgrade, url)
    listed = await client.get("/v1/habits", headers=user.headers)
    assert listed.status_code == 200, listed.text
    [habit] = listed.json()
    assert habit["archived_at"].startswith("2099-12-31T23:59:59.999999")
    assert habit["client_updated_at"].startswith("1970-01-01T00:00:00")
    assert [h["id"] for h in (await _export(resources, user.id))["habits"]] == [habit_id]


async def test_nul_in_a_mutation_is_rejected_alone(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    phone = Device()
    phone.record("habit", "upsert", uuid.uuid4(), 0, {"name": "nul \u0000 byte"})
    phone.record("routine", "upsert", uuid.uuid4(), 0, {"kind": "custom", "name": "ok", "x\u0000": 1})
    phone.record("habit", "upsert", uuid.uuid4(), "2026-03-02T06:00:00\u0000Z", {"name": "n"})
    phone.record("habit", "upsert", uuid.uuid4(), 0, {"name": "Kept"})
    answer = await _post_json(client, "/v1/sync/push", phone.batch(), user)
    assert answer.status_code == 202, answer.text
    batch_id = uuid.UUID(answer.json()["batch_id"])
    await apply(resources, batch_id)
    batch = await _batch(resources, batch_id)
    assert batch.status == "applied"
    assert [(r["mutation_id"], r["code"], r["field"]) for r in batch.result["rejected"]] == [
        (1, "invalid_data", "data.name"),
        (2, "invalid_data", "data"),
        (3, "invalid_data", "client_updated_at"),
    ]
    assert [h["name"] for h in (await client.get("/v1/habits", headers=user.headers)).json()] == ["Kept"]


async def test_a_mutation_with_another_users_id_is_rejected_and_changes_nothing(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    alice, mallory = await make_user(), await make_user()
    habit = (await client.post("/v1/habits", json={"name": "Alice's"}, headers=alice.headers)).json()
    phone = Device()
    phone.record("habit", "upsert", habit["id"], 10**6, {"name": "Mallory's"})
    phone.record("habit", "patch", habit["id"], 10**6, {"name": "Mallory's"})
    phone.record("habit", "delete", habit["id"], 10**6)
    batch = await _push(resources, mallory, phone.batch())
    assert batch.status == "applied"
    assert [r["mutation_id"] for r in batch.result["rejected"]] == [1, 2, 3]
    assert batch.result["rejected"][0]["code"] == "id_conflict"
    assert (await client.get(f"/v1/habits/{habit['id']}", headers=alice.headers)).json() == habit
    assert (await client.get(f"/v1/habits/{habit['id']}", headers=mallory.headers)).status_code == 404


# --- property: extreme values ---------------------------------------------------------------------


@dataclass(frozen=True)
class Value:
    """A field's value as sent, and whether the server can keep it."""

    raw: Any
    ok: bool


_DATES = [
    Value("1969-12-31", False),
    Value("1970-01-01", True),
    Value("2026-03-02", True),
    Value("2099-12-31", True),
    Value("2100-01-01", False),
    Value("0001-01-01", False),
    Value("9999-12-31", False),
]
_INSTANTS = [
    Value("1970-01-01T00:00:00Z", True),
    Value("1970-01-01T13:59:59+14:00", False),
    Value("1969-12-31T10:00:00-14:00", True),
    Value("2099-12-31T23:59:59.999999Z", True),
    Value("2099-12-31T10:00:00-14:00", False),
    Value("2100-01-01T13:59:59+14:00", True),
    Value("0001-01-01T00:00:00+14:00", False),
    Value("9999-12-31T23:59:59-14:00", False),
    Value("2026-03-02T07:00:00+14:00", True),
    Value("2026-03-02T07:00:00-14:00", True),
    Value("2026-03-02T07:00:00", False),
]
_NAMES = [
    Value("Read", True),
    Value("x" * 200, True),
    Value("x" * 201, False),
    Value("x" * 5000, False),
    Value("a\u0000b", False),
    Value("\ud800", False),
    Value("", False),
    Value("\U0001f600 emoji", True),
]
_NUMBERS = [
    Value(0, True),
    Value(10_000, True),
    Value(10_001, False),
    Value(-1, False),
    Value(2**63, False),
    Value(10**40, False),
    Value(1e308, False),
    Value(float("inf"), False),
]


@st.composite
def _habit_upsert(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    name = draw(st.sampled_from(_NAMES))
    fields: dict[str, Value] = {"name": name}
    for key, pool in (("created_local_date", _DATES), ("archived_at", _INSTANTS), ("position", _NUMBERS)):
        if draw(st.booleans()):
            fields[key] = draw(st.sampled_from(pool))
    stamp = draw(st.sampled_from([*_INSTANTS, Value(ts(1), True)]))
    data = {k: v.raw for k, v in fields.items()}
    ok = stamp.ok and all(v.ok for v in fields.values())
    return {"at": stamp.raw, "data": data}, ok


PROPERTY = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY
@given(mutations=st.lists(_habit_upsert(), min_size=1, max_size=6))
async def test_extreme_values_are_rejected_precisely_and_never_wedge_the_phone(
    client: httpx.AsyncClient,
    resources: Resources,
    make_user: MakeUser,
    mutations: list[tuple[dict[str, Any], bool]],
) -> None:
    user = await make_user()
    phone = Device()
    ids = []
    for mutation, _ in mutations:
        ids.append(uuid.uuid4())
        phone.record("habit", "upsert", ids[-1], mutation["at"], mutation["data"])
    answer = await _post_json(client, "/v1/sync/push", phone.batch(), user)
    assert answer.status_code == 202, answer.text
    batch_id = uuid.UUID(answer.json()["batch_id"])
    await apply(resources, batch_id)
    batch = await _batch(resources, batch_id)
    assert batch.status == "applied", batch.error
    expected_rejected = [i + 1 for i, (_, ok) in enumerate(mutations) if not ok]
    rejected = batch.result["rejected"]
    assert [r["mutation_id"] for r in rejected] == expected_rejected
    assert all(r["code"] and r["field"] for r in rejected)
    # The phone's next upload applies.
    later = uuid.uuid4()
    phone.record("habit", "upsert", later, 100, {"name": "Later"})
    next_batch = await _push(resources, user, phone.batch())
    assert next_batch.status == "applied"
    assert next_batch.result["applied"] == 1
    # Everything written reads back: every route over the user's data, and the export.
    written = {str(i) for i, (_, ok) in zip(ids, mutations, strict=True) if ok} | {str(later)}
    listed = await client.get("/v1/habits", headers=user.headers)
    assert listed.status_code == 200, listed.text
    assert {h["id"] for h in listed.json()} == written
    for habit_id in written:
        for url in (f"/v1/habits/{habit_id}", f"/v1/habits/{habit_id}/streak"):
            one = await client.get(url, headers=user.headers)
            assert one.status_code == 200, (url, one.text)
    for url in (
        "/v1/sync/pull",
        "/v1/stats/daily?from=1970-01-01&to=1970-12-31",
        "/v1/stats/weekly?from=2099-01-01&to=2099-12-31",
    ):
        read = await client.get(url, headers=user.headers)
        assert read.status_code == 200, (url, read.text)
    pulled = (await client.get("/v1/sync/pull", headers=user.headers)).json()
    assert {h["id"] for h in pulled["changes"]["habits"]["upserted"]} == written
    assert {h["id"] for h in (await _export(resources, user.id))["habits"]} == written


_AMOUNTS = [
    Value(0, True),
    Value(1.5, True),
    Value("9999999999.99", True),
    Value(-1, False),
    Value(0.001, False),
    Value(10**40, False),
    Value(float("inf"), False),
]
_SECONDS = [
    Value(0, True),
    Value(7 * 24 * 3600, True),
    Value(7 * 24 * 3600 + 1, False),
    Value(-1, False),
    Value(2**63, False),
    Value(float("nan"), False),
]


@st.composite
def _day_records(draw: st.DrawFn) -> tuple[str, dict[str, Any], bool]:
    """A completion or a focus session with extreme days, instants and numbers: (entity, data, ok)."""
    day = draw(st.sampled_from(_DATES))
    if draw(st.booleans()):
        fields = {"local_date": day, "value": draw(st.sampled_from(_AMOUNTS))}
        if draw(st.booleans()):
            fields["completed_at"] = draw(st.sampled_from(_INSTANTS))
        entity = "habit_completion"
    else:
        start = draw(st.sampled_from(_INSTANTS))
        fields = {"local_date": day, "started_at": start, "focus_seconds": draw(st.sampled_from(_SECONDS))}
        if draw(st.booleans()):
            fields["ended_at"] = start  # never before the start: only the edges are under test
        entity = "focus_session"
    return entity, {k: v.raw for k, v in fields.items()}, all(v.ok for v in fields.values())


@PROPERTY
@given(records=st.lists(_day_records(), min_size=1, max_size=6))
async def test_days_and_numbers_at_the_edges_are_stored_computed_and_exported(
    client: httpx.AsyncClient,
    resources: Resources,
    make_user: MakeUser,
    records: list[tuple[str, dict[str, Any], bool]],
) -> None:
    user = await make_user()
    phone = Device()
    habit = uuid.uuid4()
    phone.record("habit", "upsert", habit, 0, {"name": "Edge", "created_local_date": "1970-01-01"})
    written: dict[str, set[str]] = {"habit_completions": set(), "focus_sessions": set()}
    expected_rejected = []
    for entity, data, ok in records:
        if entity == "habit_completion":
            row_id = completion_id(habit, date.fromisoformat(data["local_date"]))
            data = {**data, "habit_id": str(habit)}
        else:
            row_id = uuid.uuid4()
        mutation = phone.record(entity, "upsert", row_id, 1, data)
        if ok:
            written[f"{entity}s" if entity == "focus_session" else "habit_completions"].add(str(row_id))
        else:
            expected_rejected.append(mutation["mutation_id"])
    answer = await _post_json(client, "/v1/sync/push", phone.batch(), user)
    assert answer.status_code == 202, answer.text
    batch_id = uuid.UUID(answer.json()["batch_id"])
    await apply(resources, batch_id)
    batch = await _batch(resources, batch_id)
    assert batch.status == "applied", batch.error
    assert [r["mutation_id"] for r in batch.result["rejected"]] == expected_rejected
    # The statistics and the streak are computed over whatever was accepted, and read back.
    await run_recompute(resources, user.id)
    for url in (
        "/v1/stats/daily?from=1970-01-01&to=1970-12-31",
        "/v1/stats/daily?from=2099-01-01&to=2099-12-31",
        "/v1/stats/weekly?from=1970-01-01&to=1970-12-31",
        "/v1/stats/weekly?from=2099-01-01&to=2099-12-31",
        f"/v1/habits/{habit}/streak",
        "/v1/habits",
        "/v1/sync/pull",
    ):
        read = await client.get(url, headers=user.headers)
        assert read.status_code == 200, (url, read.text)
    document = await _export(resources, user.id)
    for table, ids in written.items():
        assert {row["id"] for row in document[table]} == ids
    pulled = (await client.get("/v1/sync/pull", headers=user.headers)).json()["changes"]
    for table, ids in written.items():
        assert {row["id"] for row in pulled[table]["upserted"]} == ids


async def test_a_mutation_the_database_refuses_anyway_is_rejected_alone(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    """A value every check passes but the database refuses (here a constraint the checks do not know)
    is rejected alone as ``unprocessable``; the batch applies and the phone's next upload too."""
    user = await make_user()
    async with resources.db.transaction() as session:
        await session.execute(
            text("ALTER TABLE habits ADD CONSTRAINT test_refused_name CHECK (name <> 'Refused')")
        )
    try:
        phone = Device()
        kept = [uuid.uuid4(), uuid.uuid4()]
        phone.record("habit", "upsert", kept[0], 0, {"name": "Before"})
        phone.record("habit", "upsert", uuid.uuid4(), 0, {"name": "Refused"})
        phone.record("habit", "upsert", kept[1], 0, {"name": "After"})
        phone.record("habit", "upsert", uuid.uuid4(), 0, {"name": "x\u0000"})
        batch = await _push(resources, user, phone.batch())
        assert batch.status == "applied", batch.error
        assert batch.result["applied"] == 2
        assert [(r["mutation_id"], r["code"]) for r in batch.result["rejected"]] == [
            (2, "unprocessable"),
            (4, "invalid_data"),
        ]
        phone.record("habit", "patch", kept[0], 1, {"name": "Later"})
        later = await _push(resources, user, phone.batch())
        assert later.status == "applied"
        assert later.result["applied"] == 1
    finally:
        async with resources.db.transaction() as session:
            await session.execute(text("ALTER TABLE habits DROP CONSTRAINT test_refused_name"))
    names = {h["name"] for h in (await client.get("/v1/habits", headers=user.headers)).json()}
    assert names == {"Later", "After"}
