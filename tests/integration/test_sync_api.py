"""Offline sync over HTTP: push answers at once and exactly once, status, pull, limits, validation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, text

from habitjobs.accounts.auth import Authenticator, mint_token
from habitjobs.api.app import create_app
from habitjobs.clock import FrozenClock
from habitjobs.config import Settings
from habitjobs.queue.models import OutboxRow
from habitjobs.resources import Resources
from habitjobs.sync.models import SyncBatch
from tests.support.contract import CHECKED
from tests.support.sync import Device, body, ts
from tests.support.users import MakeUser
from tests.support.workers import drain

DAY = date(2026, 3, 2)


async def _push(client: httpx.AsyncClient, user, upload) -> httpx.Response:  # type: ignore[no-untyped-def]
    return await client.post("/v1/sync/push", headers=user.headers, json=upload)


def _new_habit(device: Device, name: str = "Stretch", at: float = 0) -> uuid.UUID:
    habit_id = uuid.uuid4()
    device.record("habit", "upsert", habit_id, at, {"name": name})
    return habit_id


async def test_push_is_accepted_then_merged_and_pulled(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    phone = Device()
    habit_id = _new_habit(phone)
    completion = phone.check(habit_id, DAY, 10, status="done")
    upload = phone.batch()

    answer = await _push(client, user, upload)
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert accepted["status"] == "queued"
    assert accepted["job_id"] == f"sync-{upload['batch_id']}"
    assert accepted["status_url"] == f"/v1/sync/batches/{upload['batch_id']}"

    # Before the answer: the batch row and its outbox row were committed, and the job was queued.
    async with resources.db.transaction() as session:
        stored = await session.get(SyncBatch, uuid.UUID(upload["batch_id"]))
        outbox = (
            await session.scalars(select(OutboxRow).where(OutboxRow.job_id == accepted["job_id"]))
        ).all()
    assert stored is not None
    assert stored.mutation_count == 2
    assert len(outbox) == 1
    assert outbox[0].user_id == user.id
    assert await resources.producer.queue("sync").getJob(accepted["job_id"]) is not None
    job = await client.get(f"/v1/jobs/{accepted['job_id']}", headers=user.headers)
    assert job.status_code == 200
    assert job.json()["name"] == "sync.apply_batch"

    await drain(resources, queues=["sync"])

    status = (await client.get(accepted["status_url"], headers=user.headers)).json()
    assert status["status"] == "applied"
    assert (status["applied"], status["ignored_stale"], status["rejected"]) == (2, 0, [])
    assert status["last_mutation_id"] == 2
    assert status["cursor"] is not None

    pulled = (await client.get("/v1/sync/pull", headers=user.headers)).json()
    assert pulled["has_more"] is False
    assert pulled["last_mutation_ids"] == {phone.client_id: 2}
    assert [h["id"] for h in pulled["changes"]["habits"]["upserted"]] == [str(habit_id)]
    completions = pulled["changes"]["habit_completions"]["upserted"]
    assert [(c["id"], c["local_date"], c["status"]) for c in completions] == [
        (str(completion), "2026-03-02", "done")
    ]
    assert "user_id" not in completions[0]
    assert "device_id" not in completions[0]


async def test_same_batch_again_answers_200_with_its_status_and_no_second_job(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    phone = Device()
    _new_habit(phone)
    upload = phone.batch()

    first = await _push(client, user, upload)
    again = await _push(client, user, upload)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["status"] == "queued"
    await drain(resources, queues=["sync"])
    after = await _push(client, user, upload)
    assert after.status_code == 200
    assert after.json()["status"] == "applied"
    assert after.json()["applied"] == 1

    async with resources.db.transaction() as session:
        outbox_rows = await session.scalar(select(func.count()).select_from(OutboxRow))
    assert outbox_rows == 1
    counts = await resources.producer.queue("sync").getJobCounts("completed", "waiting", "active", "failed")
    assert sum(int(v) for v in counts.values()) == 1


async def test_identical_pushes_racing_make_one_batch_and_one_job(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    phone = Device()
    _new_habit(phone)
    upload = phone.batch()

    answers = await asyncio.gather(*(_push(client, user, upload) for _ in range(8)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 7 + [202], [a.text for a in answers]
    async with resources.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxRow)) == 1
        assert await session.scalar(select(func.count()).select_from(SyncBatch)) == 1
    counts = await resources.producer.queue("sync").getJobCounts(
        "waiting", "prioritized", "active", "completed"
    )
    assert sum(int(v) for v in counts.values()) == 1


@pytest.fixture
async def small_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An API whose sync limits are 3 mutations and 2,000 bytes per batch."""
    tight = settings.model_copy(update={"sync_max_mutations": 3, "sync_max_batch_bytes": 2_000})
    res = Resources.open(tight, application_name="habitjobs-test")
    try:
        transport = httpx.ASGITransport(app=create_app(tight, resources=res), raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api.test", event_hooks=CHECKED
        ) as http:
            yield http
    finally:
        await res.aclose()


async def test_uploads_over_the_limits_are_413(small_client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    phone = Device()
    for n in range(4):
        _new_habit(phone, name=f"h{n}")
    too_many = await _push(small_client, user, phone.batch())
    assert too_many.status_code == 413
    assert too_many.json()["error"]["code"] == "payload_too_large"
    assert "at most 3" in too_many.json()["error"]["message"]

    # Three mutations (within the count) of ~700 bytes each: over 2,000 bytes.
    for n in range(3):
        _new_habit(phone, name=f"{n}" + "x" * 700)
    big = phone.batch()
    too_big = await _push(small_client, user, big)
    assert too_big.status_code == 413, too_big.text
    assert "bytes" in too_big.json()["error"]["message"]


async def test_unsupported_schema_version_is_409_reset_required(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    phone = Device()
    _new_habit(phone)
    upload = {**phone.batch(), "schema_version": 2}
    answer = await _push(client, user, upload)
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "reset_required"
    assert error["reset_required"] is True


def _mutation(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "mutation_id": 1,
        "entity": "habit",
        "op": "upsert",
        "id": str(uuid.uuid4()),
        "client_updated_at": ts(0),
        "data": {"name": "Read"},
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("upload", "field"),
    [
        ({"batch_id": str(uuid.uuid4()), "schema_version": 1, "mutations": [_mutation()]}, "client_id"),
        (body("has space", [_mutation()]), "client_id"),
        ({**body("c1", [_mutation()]), "batch_id": "nope"}, "batch_id"),
        (body("c1", []), "mutations"),
        ({**body("c1", [_mutation()]), "mutations": {"0": 1}}, "mutations"),
        (body("c1", [_mutation(mutation_id="one")]), "mutations.0.mutation_id"),
        (body("c1", [_mutation(mutation_id=0)]), "mutations.0.mutation_id"),
        (body("c1", [_mutation(), _mutation(mutation_id=3)]), "mutations.1.mutation_id"),
        (body("c1", [_mutation(mutation_id=2), _mutation(mutation_id=2)]), "mutations.1.mutation_id"),
        (body("c1", [_mutation(entity=7)]), "mutations.0.entity"),
        (body("c1", [_mutation(data=[1, 2])]), "mutations.0.data"),
        (body("c1", [_mutation(surprise=True)]), "mutations.0.surprise"),
        ({**body("c1", [_mutation()]), "extra": 1}, "extra"),
    ],
)
async def test_malformed_envelopes_are_422_naming_the_field(
    client: httpx.AsyncClient, make_user: MakeUser, upload: dict[str, object], field: str
) -> None:
    user = await make_user()
    answer = await _push(client, user, upload)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field


async def test_unpaired_surrogates_are_rejected_alone_and_broken_json_is_422(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    raw = (
        f'{{"client_id":"c1","batch_id":"{uuid.uuid4()}","schema_version":1,"mutations":[{{"mutation_id":1,"entity":"habit",'
        f'"op":"upsert","id":"{uuid.uuid4()}","client_updated_at":"{ts(0)}","data":{{"name":"\\ud800"}}}}]}}'
    )
    headers = {**user.headers, "content-type": "application/json"}
    answer = await client.post("/v1/sync/push", headers=headers, content=raw)
    # Accepted: the merge rejects that one mutation and goes on (see test_hostile_values).
    assert answer.status_code == 202, answer.text
    broken = await client.post("/v1/sync/push", headers=headers, content=raw[:-3])
    assert broken.status_code == 422
    assert broken.json()["error"]["code"] == "malformed_json"


async def test_sync_routes_need_a_token(client: httpx.AsyncClient) -> None:
    for method, url in [
        ("POST", "/v1/sync/push"),
        ("GET", f"/v1/sync/batches/{uuid.uuid4()}"),
        ("GET", "/v1/sync/pull"),
    ]:
        answer = await client.request(
            method, url, json=body("c1", [_mutation()]) if method == "POST" else None
        )
        assert answer.status_code == 401, (method, url)


async def test_nobody_reads_or_reuses_another_users_batches_or_rows(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    alice, mallory = await make_user(), await make_user()
    phone = Device()
    habit_id = _new_habit(phone, name="Alice's secret habit")
    phone.check(habit_id, DAY, 5)
    upload = phone.batch()
    accepted = (await _push(client, alice, upload)).json()
    await drain(resources, queues=["sync"])

    status = await client.get(accepted["status_url"], headers=mallory.headers)
    assert status.status_code == 404
    job = await client.get(f"/v1/jobs/{accepted['job_id']}", headers=mallory.headers)
    assert job.status_code == 404
    # Reusing Alice's batch id: refused, and the answer says nothing about her batch.
    stolen = await _push(
        client,
        mallory,
        {
            **Device().batch(),
            **{k: upload[k] for k in ("batch_id",)},
            "client_id": "m",
            "mutations": upload["mutations"],
        },
    )
    assert stolen.status_code == 404
    assert stolen.json()["error"]["code"] == "not_found"
    assert str(habit_id) not in stolen.text
    assert "Alice" not in stolen.text
    assert "applied" not in stolen.text
    pulled = (await client.get("/v1/sync/pull", headers=mallory.headers)).json()
    assert all(not t["upserted"] and not t["deleted"] for t in pulled["changes"].values())
    assert pulled["last_mutation_ids"] == {}
    # A cursor taken from Alice's stream is not a way in either.
    alice_cursor = (await client.get("/v1/sync/pull", headers=alice.headers)).json()["cursor"]
    peek = (
        await client.get("/v1/sync/pull", headers=mallory.headers, params={"cursor": alice_cursor})
    ).json()
    assert peek["reset_required"] is True
    assert peek["changes"] == {}
    # Alice still sees her own batch and rows.
    assert (await client.get(accepted["status_url"], headers=alice.headers)).json()["applied"] == 2


async def test_a_token_outliving_its_user_cannot_push_or_read(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    async with resources.db.transaction() as session:
        await session.execute(text("DELETE FROM users WHERE id = :id"), {"id": user.id})
    phone = Device()
    _new_habit(phone)
    answer = await _push(client, user, phone.batch())
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthorized"
    assert (await client.get("/v1/sync/pull", headers=user.headers)).status_code == 401
    async with resources.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxRow)) == 0


async def test_uploads_of_gone_or_leaving_users_are_401_beside_accepted_ones(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    """The push looks its uploaders up with the group that stores them: a gone user's and a locked user's
    uploads are refused with 401 while the others arriving at the same moment are stored."""
    fine, gone, leaving = await make_user(), await make_user(), await make_user()
    async with resources.db.transaction() as session:
        await session.execute(text("DELETE FROM users WHERE id = :id"), {"id": gone.id})
        await session.execute(text("UPDATE users SET locked_at = now() WHERE id = :id"), {"id": leaving.id})
    uploads = []
    for user in (fine, gone, leaving, fine):
        phone = Device()
        _new_habit(phone)
        uploads.append((user, phone.batch()))

    answers = await asyncio.gather(*(_push(client, user, upload) for user, upload in uploads))
    assert [a.status_code for a in answers] == [202, 401, 401, 202], [a.text for a in answers]
    assert "no longer exists" in answers[1].json()["error"]["message"]
    assert "being deleted" in answers[2].json()["error"]["message"]
    async with resources.db.transaction() as session:
        owners = (await session.scalars(select(SyncBatch.user_id))).all()
        assert sorted(map(str, owners)) == [str(fine.id)] * 2
        assert await session.scalar(select(func.count()).select_from(OutboxRow)) == 2


async def test_a_remembered_token_still_expires(resources: Resources, make_user: MakeUser) -> None:
    user = await make_user()
    now = datetime.now(UTC)
    clock = FrozenClock(now)
    app = create_app(resources.settings, resources=resources)
    app.state.authenticator = Authenticator(resources.settings, clock=clock)  # token expiry's time
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api.test", event_hooks=CHECKED
    ) as client:
        short = {"Authorization": f"Bearer {mint_token(resources.settings, user.id, now=now, ttl_s=60)}"}
        phone = Device()
        _new_habit(phone)
        assert (await client.post("/v1/sync/push", headers=short, json=phone.batch())).status_code == 202
        clock.advance(timedelta(seconds=61))
        _new_habit(phone)
        late = await client.post("/v1/sync/push", headers=short, json=phone.batch())
        assert late.status_code == 401
        assert "expired" in late.json()["error"]["message"]
        forged = {"Authorization": f"Bearer {mint_token(resources.settings, user.id, now=now)[:-2]}xx"}
        assert (await client.post("/v1/sync/push", headers=forged, json=phone.batch())).status_code == 401


async def test_pull_pages_through_changes_with_a_cursor(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    phone = Device()
    habit_id = _new_habit(phone)
    days = [date(2026, 3, d) for d in range(1, 8)]
    for n, day in enumerate(days):
        phone.check(habit_id, day, 10 + n)
    await _push(client, user, phone.batch())
    await drain(resources, queues=["sync"])

    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/sync/pull", headers=user.headers, params=params)).json()
        for table in page["changes"].values():
            seen.extend(row["id"] for row in table["upserted"])
        cursor = page["cursor"]
        if not page["has_more"]:
            break
    assert len(seen) == len(set(seen)) == 8
    # Nothing new: the same cursor gives an empty page and stays where it is.
    quiet = (await client.get("/v1/sync/pull", headers=user.headers, params={"cursor": cursor})).json()
    assert all(not t["upserted"] and not t["deleted"] for t in quiet["changes"].values())
    assert quiet["cursor"] == cursor
    assert quiet["has_more"] is False

    # An uncheck shows up as a tombstone in the next incremental pull, never in a first pull.
    phone.uncheck(habit_id, days[0], 100)
    await _push(client, user, phone.batch())
    await drain(resources, queues=["sync"])
    delta = (await client.get("/v1/sync/pull", headers=user.headers, params={"cursor": cursor})).json()
    assert delta["changes"]["habit_completions"]["deleted"] != []
    assert sum(len(t["upserted"]) for t in delta["changes"].values()) == 0
    fresh = (await client.get("/v1/sync/pull", headers=user.headers)).json()
    assert fresh["changes"]["habit_completions"]["deleted"] == []
    assert len(fresh["changes"]["habit_completions"]["upserted"]) == 6


async def test_bad_cursors(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    for bad in ["x", "1.2", "-1", "3.x.y", f"1.{2**31 - 1}.{uuid.uuid4()}"]:
        answer = await client.get("/v1/sync/pull", headers=user.headers, params={"cursor": bad})
        assert answer.status_code == 422, bad
        assert answer.json()["error"]["field"] == "cursor"
    # A well-formed cursor from the future (another account, a restored database) means: start over.
    ahead = (await client.get("/v1/sync/pull", headers=user.headers, params={"cursor": "99"})).json()
    assert ahead["reset_required"] is True
    assert ahead["cursor"] is None
    for bad_limit in (0, 1001, "many"):
        answer = await client.get("/v1/sync/pull", headers=user.headers, params={"limit": bad_limit})
        assert answer.status_code == 422
        assert answer.json()["error"]["field"] == "limit"


async def test_batch_status_of_an_unknown_batch_is_404(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user()
    assert (await client.get(f"/v1/sync/batches/{uuid.uuid4()}", headers=user.headers)).status_code == 404
    assert (await client.get("/v1/sync/batches/not-a-uuid", headers=user.headers)).status_code == 422
