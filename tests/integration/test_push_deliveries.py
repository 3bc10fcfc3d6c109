"""Deliveries end to end: created without duplicates, leased, sent through the fakes by ``push.send_batch``,
each outcome recorded, dead tokens disabling devices, stale ones skipped, refused credentials visible."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select, update

from habitjobs.accounts.models import Device
from habitjobs.accounts.repository import get_or_create_user, update_user
from habitjobs.config import Settings
from habitjobs.errors import RetryLater
from habitjobs.push import dispatch, jobs, service
from habitjobs.push import repository as push_repo
from habitjobs.push.fakes import RunningFakes
from habitjobs.push.models import PushDelivery
from habitjobs.push.result import Provider, PushMessage
from habitjobs.push.schemas import Notification
from habitjobs.queue.inspect import get_job
from habitjobs.queue.models import OutboxRow
from habitjobs.queue.names import PUSH
from habitjobs.queue.operations import JobOperations
from habitjobs.resources import JobContext, Resources
from tests.fakes.push import add_device, deliveries, fakes_for_module, notify, settings_for, token
from tests.support.workers import drain


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFakes]:
    yield from fakes_for_module(tmp_path_factory)


@pytest.fixture
async def res(settings: Settings, fakes: RunningFakes) -> AsyncIterator[Resources]:
    resources = Resources.open(settings_for(settings, fakes, push_outcome_flush_ms=10))
    yield resources
    await resources.aclose()


async def new_user(res: Resources, locale: str = "en") -> uuid.UUID:
    async with res.db.transaction() as session:
        user = await get_or_create_user(session, f"push-{uuid.uuid4().hex[:8]}@example.com")
        if locale != "en":
            await update_user(session, user.id, {"locale": locale})
    return user.id


def context(res: Resources) -> JobContext:
    return JobContext(
        job_id="push-test", name=service.SEND_JOB, queue=PUSH, attempt=1, max_attempts=8, resources=res
    )


async def test_one_delivery_per_enabled_device_rendered_in_the_users_language_and_never_twice(
    res: Resources,
) -> None:
    user = await new_user(res, locale="en-GB")
    apns = await add_device(res, user, token("ok"))
    fcm = await add_device(res, user, token("ok"), provider="fcm")
    off = await add_device(res, user, token("ok"), provider="fcm")
    async with res.db.transaction() as session:
        await session.execute(update(Device).where(Device.id == off).values(push_enabled=False))

    habit = uuid.uuid4()
    notification = Notification.streak_at_risk(habit, "Stretch", 12)
    first = await notify(res, user, key=f"reminder:{habit}:2026-03-09", notification=notification)
    again = await notify(res, user, key=f"reminder:{habit}:2026-03-09", notification=notification)
    assert len(first) == 2
    assert again == []  # the same occasion: nothing new, nothing staged again

    rows = await deliveries(res, first)
    assert {r.device_id for r in rows.values()} == {apns, fcm}
    assert {r.dedupe_key for r in rows.values()} == {
        f"reminder:{habit}:2026-03-09:{apns}",
        f"reminder:{habit}:2026-03-09:{fcm}",
    }
    assert len({r.collapse_id for r in rows.values()}) == 1  # one occasion, one collapse id
    row = next(iter(rows.values()))
    assert row.status == "pending"
    assert row.payload["title"] == "Keep your streak alive"
    assert "12-day streak on Stretch" in row.payload["body"]
    assert row.payload["data"] == {"kind": "streak_at_risk", "habit_id": str(habit)}
    assert row.id == service.delivery_id(row.dedupe_key)
    async with res.db.transaction() as session:
        jobs_staged = await session.scalar(select(func.count()).select_from(OutboxRow))
    assert jobs_staged == 1


async def test_a_user_without_devices_gets_no_deliveries(res: Resources) -> None:
    assert await notify(res, await new_user(res)) == []


async def test_staging_chunks_500_per_job_with_deterministic_ids(res: Resources) -> None:
    ids = [uuid.uuid4() for _ in range(1001)]
    async with res.db.transaction() as session:
        job_ids = await service.stage_send(session, res.outbox, ids)
    async with res.db.transaction() as session:
        again = await service.stage_send(session, res.outbox, ids)
        rows = (await session.scalars(select(OutboxRow).order_by(OutboxRow.id))).all()
    assert len(job_ids) == 3
    assert again == job_ids
    assert [len(r.data["delivery_ids"]) for r in rows] == [500, 500, 1]
    assert all(r.job_name == "push.send_batch" for r in rows)


async def test_the_batch_job_sends_records_each_outcome_and_disables_dead_tokens(
    res: Resources, fakes: RunningFakes
) -> None:
    user = await new_user(res)
    tokens = {
        "apns_ok": token("ok"),
        "fcm_ok": token("ok"),
        "apns_dead": token("dead"),
        "fcm_dead": token("unregistered"),
    }
    devices = {
        name: await add_device(res, user, value, provider="apns" if name.startswith("apns") else "fcm")
        for name, value in tokens.items()
    }
    ids = await notify(res, user)
    await drain(res, queues=[PUSH])

    rows = {r.device_id: r for r in (await deliveries(res, ids)).values()}
    for name in ("apns_ok", "fcm_ok"):
        row = rows[devices[name]]
        assert (row.status, row.attempts, row.leased_until) == ("sent", 1, None)
        assert row.sent_at is not None
        assert row.provider_message_id
        (received,) = fakes.log.received(tokens[name])
        assert received.collapse_id == row.collapse_id
        assert received.title == "Read"
    for name in ("apns_dead", "fcm_dead"):
        assert rows[devices[name]].status == "token_invalid"
        assert fakes.log.count(tokens[name]) == 0
    async with res.db.transaction() as session:
        state = {d.id: d for d in (await session.scalars(select(Device).where(Device.user_id == user))).all()}
    assert state[devices["apns_ok"]].push_enabled
    assert not state[devices["apns_dead"]].push_enabled
    assert state[devices["apns_dead"]].invalid_reason == "Unregistered"
    assert not state[devices["fcm_dead"]].push_enabled
    assert state[devices["fcm_dead"]].invalid_reason == "UNREGISTERED"


async def test_apns_410_spares_a_device_registered_again_after_the_providers_timestamp(
    res: Resources,
) -> None:
    user = await new_user(res)
    an_hour_ago_ms = int((time.time() - 3600) * 1000)
    reregistered = await add_device(res, user, f"unregistered-{an_hour_ago_ms}-{uuid.uuid4().hex}")
    dead_now = await add_device(res, user, token("dead"))
    ids = await notify(res, user)
    await dispatch.send_batch(res, ids)
    async with res.db.transaction() as session:
        enabled = {d.id: d.push_enabled for d in (await session.scalars(select(Device))).all()}
    assert enabled[reregistered] is True
    assert enabled[dead_now] is False
    assert {r.status for r in (await deliveries(res, ids)).values()} == {"token_invalid"}


async def test_stale_deliveries_are_skipped_not_sent_late(res: Resources, fakes: RunningFakes) -> None:
    user = await new_user(res)
    device_token = token("ok")
    await add_device(res, user, device_token)
    ids = await notify(res, user, not_after=res.clock.now() - timedelta(minutes=1))
    report = await dispatch.send_batch(res, ids)
    (row,) = (await deliveries(res, ids)).values()
    assert (row.status, row.last_error, row.attempts) == ("skipped", "past not_after", 0)
    assert report.counts["skipped"] == 1
    assert fakes.log.count(device_token) == 0


async def test_a_device_disabled_after_the_delivery_was_made_is_skipped(
    res: Resources, fakes: RunningFakes
) -> None:
    user = await new_user(res)
    device_token = token("ok")
    device = await add_device(res, user, device_token)
    ids = await notify(res, user)
    async with res.db.transaction() as session:
        await session.execute(update(Device).where(Device.id == device).values(push_enabled=False))
    await dispatch.send_batch(res, ids)
    (row,) = (await deliveries(res, ids)).values()
    assert (row.status, row.last_error) == ("skipped", "device disabled")
    assert fakes.log.count(device_token) == 0


async def test_retry_outcomes_stay_pending_and_a_second_attempt_resends_only_those(
    res: Resources, fakes: RunningFakes
) -> None:
    user = await new_user(res)
    fine, busy = token("ok"), token("unavailable")
    await add_device(res, user, fine, provider="fcm")
    busy_device = await add_device(res, user, busy, provider="fcm")
    ids = await notify(res, user, stage=False)
    payload = jobs.SendBatch(delivery_ids=ids)

    with pytest.raises(RetryLater) as first:
        await jobs.send_batch(context(res), payload)
    assert first.value.after_s >= 3.0  # the fake's Retry-After
    rows = {r.device_id: r for r in (await deliveries(res, ids)).values()}
    busy_row = rows[busy_device]
    assert (busy_row.status, busy_row.attempts, busy_row.leased_until) == ("pending", 1, None)
    assert busy_row.next_attempt_at is not None
    assert busy_row.last_error is not None
    assert "UNAVAILABLE" in busy_row.last_error

    with pytest.raises(RetryLater):
        await jobs.send_batch(context(res), payload)
    assert fakes.log.count(fine) == 1  # the queue retry re-claimed only the unfinished delivery
    rows = {r.device_id: r for r in (await deliveries(res, ids)).values()}
    assert rows[busy_device].attempts == 2


async def test_a_malformed_payload_fails_its_delivery_without_retrying(res: Resources) -> None:
    user = await new_user(res)
    await add_device(res, user, token("badpayload"), provider="fcm")
    ids = await notify(res, user, stage=False)
    result = await jobs.send_batch(context(res), jobs.SendBatch(delivery_ids=ids))
    assert result["bad_request"] == 1
    (row,) = (await deliveries(res, ids)).values()
    assert row.status == "failed"
    assert row.last_error is not None
    assert "message.android.ttl" in row.last_error


@pytest.fixture
def wrong_apns_key(tmp_path: Path) -> str:
    path = tmp_path / "AuthKey_WRONG.p8"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(path)


async def test_refused_credentials_fail_the_job_visibly_and_its_deliveries_until_it_is_retried(
    settings: Settings, fakes: RunningFakes, wrong_apns_key: str
) -> None:
    res = Resources.open(settings_for(settings, fakes, push_apns_key_file=wrong_apns_key))
    fixed = Resources.open(settings_for(settings, fakes))
    try:
        user = await new_user(res)
        apns_token, fcm_token = token("ok"), token("ok")
        await add_device(res, user, apns_token)
        await add_device(res, user, fcm_token, provider="fcm")
        ids = await notify(res, user)
        async with res.db.transaction() as session:
            (job_id,) = (await session.scalars(select(OutboxRow.job_id))).all()
        await drain(res, queues=[PUSH])

        view = await get_job(res.producer, PUSH, job_id)
        assert view is not None
        assert view.state == "failed"  # in the failed list, where an operator looks
        assert view.attempts_made == 1  # failed at once: retrying cannot fix credentials
        assert "InvalidProviderToken" in (view.failed_reason or "")
        probe = PushMessage(provider=Provider.APNS, token=apns_token, title="t", body="b", collapse_id="c")
        assert res.push().paused(probe) is not None  # the APNs sender is paused
        rows = {r.provider: r for r in (await deliveries(res, ids)).values()}
        # FCM was not held back by APNs
        assert {p: r.status for p, r in rows.items()} == {"apns": "failed", "fcm": "sent"}
        assert (rows["apns"].last_error or "").startswith(service.JOB_FAILED)
        assert "InvalidProviderToken" in (rows["apns"].last_error or "")
        assert fakes.log.count(apns_token) == 0

        # The operator fixes the key and retries the job: the delivery its failure closed is sent after all.
        await JobOperations(fixed.producer).retry(PUSH, job_id)
        await drain(fixed, queues=[PUSH])
        rows = {r.provider: r for r in (await deliveries(res, ids)).values()}
        assert {p: r.status for p, r in rows.items()} == {"apns": "sent", "fcm": "sent"}
        assert fakes.log.count(apns_token) == 1
        assert fakes.log.count(fcm_token) == 1
    finally:
        await res.aclose()
        await fixed.aclose()


async def test_deliveries_leased_by_another_worker_are_left_alone_until_the_lease_ends(
    res: Resources, fakes: RunningFakes
) -> None:
    user = await new_user(res)
    device_token = token("ok")
    await add_device(res, user, device_token)
    ids = await notify(res, user, stage=False)
    now = res.clock.now()
    async with res.db.transaction() as session:  # another worker holds them for 60 s
        claimed = await push_repo.claim(session, ids, now=now, lease_until=now + timedelta(seconds=60))
    assert len(claimed) == 1

    report = await dispatch.send_batch(res, ids)
    assert report.counts["leased_elsewhere"] == 1
    assert report.retry_after_s is not None
    assert 59 <= report.retry_after_s <= 62
    assert fakes.log.count(device_token) == 0

    async with res.db.transaction() as session:  # that worker died; its lease ran out
        await session.execute(
            update(PushDelivery)
            .where(PushDelivery.id.in_(ids))
            .values(leased_until=now - timedelta(seconds=1))
        )
    await dispatch.send_batch(res, ids)
    (row,) = (await deliveries(res, ids)).values()
    assert (row.status, row.attempts) == ("sent", 2)
    assert fakes.log.count(device_token) == 1


async def test_two_workers_on_the_same_batch_send_each_delivery_once(
    res: Resources, settings: Settings, fakes: RunningFakes
) -> None:
    other = Resources.open(settings_for(settings, fakes))
    try:
        user = await new_user(res)
        device_tokens = [token("ok") for _ in range(30)]
        for value in device_tokens:
            await add_device(res, user, value, provider="fcm" if len(value) % 2 else "apns")
        ids = await notify(res, user, stage=False)
        await asyncio.gather(dispatch.send_batch(res, ids), dispatch.send_batch(other, ids))
        assert {r.status for r in (await deliveries(res, ids)).values()} == {"sent"}
        assert [fakes.log.count(t) for t in device_tokens] == [1] * 30
    finally:
        await other.aclose()


async def test_the_apns_environment_that_accepted_a_token_is_remembered(res: Resources) -> None:
    user = await new_user(res)
    device = await add_device(res, user, token("sandbox"), apns_env="production")
    ids = await notify(res, user)
    await dispatch.send_batch(res, ids)
    async with res.db.transaction() as session:
        env = await session.scalar(select(Device.apns_env).where(Device.id == device))
    assert env == "sandbox"
    assert {r.status for r in (await deliveries(res, ids)).values()} == {"sent"}
