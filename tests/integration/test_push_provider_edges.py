"""Providers that misbehave at the edges, against the fakes (TLS + HTTP/2):

- the other APNs environment's answer is not the provider's word on our credentials: a sandbox that
  refuses the key (403) or does not answer leaves the production BadDeviceToken standing — no pause of
  APNs, no job retry;
- a provider pause stops the requests already queued behind the refused one (a wrong key id: one request
  is refused, the other 499 are never sent), and is logged once;
- a window of 429 answers slows the job down without using up its attempts."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import insert, select

from habitjobs.accounts.models import Device, User
from habitjobs.config import Settings
from habitjobs.push import service
from habitjobs.push.fakes import RunningFakes
from habitjobs.push.models import PushDelivery
from habitjobs.push.schemas import Notification
from habitjobs.queue.inspect import JobView, get_job
from habitjobs.queue.names import PUSH
from habitjobs.resources import Resources
from tests.fakes.push import fakes_for_module, settings_for
from tests.support.workers import drain


@pytest.fixture(scope="module")
def sandbox_refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFakes]:
    yield from fakes_for_module(tmp_path_factory, apns_sandbox_refuses_key=True)


@pytest.fixture(scope="module")
def sandbox_silent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFakes]:
    yield from fakes_for_module(tmp_path_factory, apns_sandbox_silent=True)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFakes]:
    yield from fakes_for_module(tmp_path_factory, latency_ms=2)


@pytest.fixture(scope="module")
def quota_window(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFakes]:
    yield from fakes_for_module(tmp_path_factory, fcm_quota_window_s=3.0, fcm_quota_retry_after_s=1)


async def batch(
    res: Resources, tokens: list[str], *, provider: str = "apns"
) -> tuple[dict[uuid.UUID, str], list[uuid.UUID], list[str]]:
    """One user with a device per token, a delivery to each, and their send jobs staged."""
    user = uuid.uuid4()
    devices = {uuid.uuid4(): t for t in tokens}
    async with res.db.transaction() as session:
        await session.execute(insert(User).values(id=user, email=f"{user}@example.com"))
        await session.execute(
            insert(Device),
            [
                {
                    "id": device_id,
                    "user_id": user,
                    "platform": "ios" if provider == "apns" else "android",
                    "provider": provider,
                    "push_token": t,
                    "apns_env": "production" if provider == "apns" else None,
                }
                for device_id, t in devices.items()
            ],
        )
        ids = await service.create_deliveries(
            session,
            user,
            Notification.habit_reminder(uuid.uuid4(), "Read"),
            dedupe_key=f"edge:{uuid.uuid4()}",
            not_after=res.clock.now().replace(year=2100),
        )
        job_ids = await service.stage_send(session, res.outbox, ids)
    return devices, ids, job_ids


async def outcome(res: Resources, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """device id → delivery status"""
    async with res.db.transaction() as session:
        rows = (
            await session.execute(
                select(PushDelivery.device_id, PushDelivery.status).where(PushDelivery.id.in_(ids))
            )
        ).all()
    return {device: status for device, status in rows}


async def jobs(res: Resources, job_ids: list[str]) -> list[JobView]:
    views = [await get_job(res.producer, PUSH, job_id) for job_id in job_ids]
    return [v for v in views if v is not None]


def ok_tokens(n: int) -> list[str]:
    return [f"ok-{uuid.uuid4().hex}" for _ in range(n)]


async def test_a_sandbox_refusing_our_key_neither_pauses_apns_nor_fails_the_job(
    settings: Settings, sandbox_refusing: RunningFakes
) -> None:
    res = Resources.open(settings_for(settings, sandbox_refusing))
    try:
        bad = f"badtoken-{uuid.uuid4().hex}"
        devices, ids, job_ids = await batch(res, [bad, *ok_tokens(4)])
        await drain(res, queues=[PUSH])
        status = await outcome(res, ids)
        assert sorted(status[d] for d in devices) == ["sent"] * 4 + ["token_invalid"]
        assert [(j.state, j.attempts_made) for j in await jobs(res, job_ids)] == [("completed", 1)]
        # A batch right after it still goes out: APNs was not paused.
        later_tokens = ok_tokens(450)
        _later, later_ids, later_jobs = await batch(res, later_tokens)
        await drain(res, queues=[PUSH])
        assert set((await outcome(res, later_ids)).values()) == {"sent"}
        assert all(sandbox_refusing.log.count(t) == 1 for t in later_tokens)
        assert all(j.state == "completed" for j in await jobs(res, later_jobs))
    finally:
        await res.aclose()


async def test_a_sandbox_that_does_not_answer_does_not_retry_the_job(
    settings: Settings, sandbox_silent: RunningFakes
) -> None:
    res = Resources.open(settings_for(settings, sandbox_silent, push_request_timeout_s=1.0))
    try:
        bad = [f"badtoken-{uuid.uuid4().hex}" for _ in range(5)]
        devices, ids, job_ids = await batch(res, [*bad, *ok_tokens(5)])
        await drain(res, queues=[PUSH], timeout_s=60)
        status = await outcome(res, ids)
        assert sorted(status[d] for d in devices) == ["sent"] * 5 + ["token_invalid"] * 5
        assert [(j.state, j.attempts_made) for j in await jobs(res, job_ids)] == [("completed", 1)]
    finally:
        await res.aclose()


async def test_a_pause_stops_the_requests_already_queued_and_is_logged_once(
    settings: Settings, plain: RunningFakes, caplog: pytest.LogCaptureFixture
) -> None:
    res = Resources.open(settings_for(settings, plain, push_apns_key_id="ZZZZZZZZZZ"))
    try:
        before = plain.log.requests
        tokens = ok_tokens(500)
        _devices, ids, job_ids = await batch(res, tokens)
        with caplog.at_level(logging.INFO):
            await drain(res, queues=[PUSH])
        sent_requests = plain.log.requests - before
        # One request per connection finds out (a new APNs connection allows one stream until a success).
        assert sent_requests <= res.settings.push_apns_connections, sent_requests
        assert [j.state for j in await jobs(res, job_ids)] == ["failed"]
        assert set((await outcome(res, ids)).values()) == {"failed"}
        pauses = [r for r in caplog.records if "pausing apns" in r.getMessage()]
        assert len(pauses) == 1, [r.getMessage() for r in pauses]
        errors = [
            r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("habitjobs.push")
        ]
        assert len(errors) <= 2, [r.getMessage() for r in errors]
    finally:
        await res.aclose()


async def test_a_window_of_429s_slows_the_job_down_without_using_its_attempts(
    settings: Settings, quota_window: RunningFakes
) -> None:
    res = Resources.open(settings_for(settings, quota_window))
    try:
        tokens = ok_tokens(300)
        _devices, ids, job_ids = await batch(res, tokens, provider="fcm")
        await drain(res, queues=[PUSH], timeout_s=90)
        assert quota_window.fcm.quota_refusals > 0  # the window really refused
        assert set((await outcome(res, ids)).values()) == {"sent"}
        assert all(quota_window.log.count(t) == 1 for t in tokens)
        assert [(j.state, j.attempts_made) for j in await jobs(res, job_ids)] == [("completed", 1)]
    finally:
        await res.aclose()
