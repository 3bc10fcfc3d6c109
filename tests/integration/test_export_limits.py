"""Data exports: one at a time per user, a size cap that fails with a reason (no retry loop), expiry
(410) and the retention job that deletes expired exports in small batches."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, text

from habitjobs.accounts import service
from habitjobs.accounts.jobs import ExportData, export_data
from habitjobs.accounts.models import DataExport
from habitjobs.api.app import create_app
from habitjobs.catalog import build_schedules
from habitjobs.clock import FrozenClock
from habitjobs.config import Settings
from habitjobs.maintenance import jobs as maintenance_jobs
from habitjobs.queue.failures import settle_final_failure
from habitjobs.queue.names import DEFAULT
from habitjobs.queue.registry import FailedJob
from habitjobs.resources import JobContext, Resources
from tests.support.apps import changed
from tests.support.contract import CHECKED
from tests.support.users import MakeUser
from tests.support.workers import drain

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


async def _exports(resources: Resources, user_id: uuid.UUID) -> list[DataExport]:
    async with resources.db.transaction() as session:
        rows = await session.scalars(
            select(DataExport).where(DataExport.user_id == user_id).order_by(DataExport.requested_at)
        )
        return list(rows.all())


async def test_a_second_request_while_one_is_in_flight_returns_it(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    """Regression: one user queued 700 exports."""
    user = await make_user()
    first = await client.post("/v1/me/exports", headers=user.headers)
    assert first.status_code == 202, first.text
    again = await client.post("/v1/me/exports", headers=user.headers)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()  # the same export, the same job

    # Concurrent requests of another user: one export, one job.
    other = await make_user()
    answers = await asyncio.gather(*(client.post("/v1/me/exports", headers=other.headers) for _ in range(8)))
    assert sorted(a.status_code for a in answers) == [200] * 7 + [202]
    assert len({a.json()["job_id"] for a in answers}) == 1
    assert len(await _exports(resources, other.id)) == 1

    await drain(resources, queues=[DEFAULT])
    done = await client.get(first.json()["export_url"], headers=user.headers)
    assert done.json()["status"] == "done"
    # Once it finished, the next request starts a new one.
    third = await client.post("/v1/me/exports", headers=user.headers)
    assert third.status_code == 202
    assert third.json()["job_id"] != first.json()["job_id"]


async def test_an_export_over_the_size_cap_fails_at_once_with_a_reason(
    settings: Settings, make_user: MakeUser
) -> None:
    """Regression: export documents reached 144 MB."""
    small = changed(settings, export_max_bytes=5_000)
    resources = Resources.open(small, application_name="habitjobs-test")
    try:
        user = await make_user()
        app = create_app(small, resources=resources)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api.test", event_hooks=CHECKED
        ) as http:
            for i in range(30):
                body = {"name": f"a habit with a long name, number {i:03d} " + "x" * 150}
                assert (await http.post("/v1/habits", headers=user.headers, json=body)).status_code == 201
            accepted = (await http.post("/v1/me/exports", headers=user.headers)).json()
            await drain(resources, queues=[DEFAULT])
            job = (await http.get(accepted["status_url"], headers=user.headers)).json()
            assert job["state"] == "failed"
            assert job["attempts_made"] == 1, "not retried: retrying cannot make it smaller"
            assert "more than the 5.0 kB an export may have" in job["failed_reason"]
            export = (await http.get(accepted["export_url"], headers=user.headers)).json()
            assert export["status"] == "failed"
            assert export["document"] is None
            assert "more than the 5.0 kB an export may have" in export["error"]
            # The user is not stuck: another request starts another export.
            assert (await http.post("/v1/me/exports", headers=user.headers)).status_code == 202
    finally:
        await resources.aclose()


async def test_a_finished_export_expires_answers_410_and_is_deleted_by_retention(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    clock = FrozenClock(T0)
    resources.clock = clock
    user = await make_user()
    accepted = (await client.post("/v1/me/exports", headers=user.headers)).json()
    await drain(resources, queues=[DEFAULT])
    done = (await client.get(accepted["export_url"], headers=user.headers)).json()
    keep = timedelta(seconds=resources.settings.export_keep_s)
    assert datetime.fromisoformat(done["expires_at"]) == T0 + keep
    assert done["document"]["user"]["email"] == user.email
    assert done["size_bytes"] > 100

    # Past its expiry it answers 410 at once, before any clean-up ran.
    clock.advance(keep + timedelta(seconds=1))
    expired = await client.get(accepted["export_url"], headers=user.headers)
    assert expired.status_code == 410
    assert expired.json()["error"]["code"] == "export_expired"

    assert await _retention(resources) == {"data_exports.expire": 1, "data_exports.forget": 0}
    [row] = await _exports(resources, user.id)
    assert row.status == "expired"
    assert row.document is None
    assert (await client.get(accepted["export_url"], headers=user.headers)).status_code == 410

    clock.advance(timedelta(seconds=resources.settings.export_forget_after_s))
    assert await _retention(resources) == {"data_exports.expire": 0, "data_exports.forget": 1}
    assert await _exports(resources, user.id) == []
    assert (await client.get(accepted["export_url"], headers=user.headers)).status_code == 404


async def test_retention_works_in_small_batches_and_leaves_live_exports(
    settings: Settings, make_user: MakeUser
) -> None:
    resources = Resources.open(changed(settings, retention_batch=3), clock=FrozenClock(T0))
    try:
        users = [await make_user() for _ in range(8)]
        for user in users:
            async with resources.db.transaction() as session:
                await service.request_export(session, resources.outbox, user.id)
        await drain(resources, queues=[DEFAULT])
        # One more user whose export is still queued: retention leaves it alone.
        waiting = await make_user()
        async with resources.db.transaction() as session:
            await service.request_export(session, resources.outbox, waiting.id)

        assert await _retention(resources) == {"data_exports.expire": 0, "data_exports.forget": 0}
        resources.clock.advance(timedelta(seconds=resources.settings.export_keep_s + 1))  # type: ignore[attr-defined]
        assert await _retention(resources) == {"data_exports.expire": 8, "data_exports.forget": 0}
        async with resources.db.transaction() as session:
            statuses = dict(
                (
                    await session.execute(select(DataExport.status, func.count()).group_by(DataExport.status))
                ).all()
            )
        assert statuses == {"expired": 8, "queued": 1}
    finally:
        await resources.aclose()


def test_retention_is_scheduled(settings: Settings) -> None:
    [schedule] = [s for s in build_schedules(settings) if s.job_name == maintenance_jobs.RETENTION_JOB]
    assert schedule.every_ms == settings.retention_every_ms


async def _retention(resources: Resources) -> dict[str, int]:
    """The export rules' counts of one retention run."""
    spec = resources.registry.get(maintenance_jobs.RETENTION_JOB)
    ctx = JobContext("retention-test", spec.name, spec.queue, 1, 1, resources)
    done = await maintenance_jobs.run_retention(ctx, maintenance_jobs.Retention())
    return {rule: count for rule, count in done.items() if rule.startswith("data_exports.")}


async def test_an_export_whose_job_fails_for_good_ends_failed(
    resources: Resources, make_user: MakeUser
) -> None:
    """A job that ends failed leaves the export saying so, and the user free to ask again."""
    user = await make_user()
    async with resources.db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO habits (id, user_id, name, server_version, client_updated_at, device_id, "
                "archived_at) VALUES (:id, :user_id, 'unreadable', 1, now(), '', '9999-12-31T23:59:59-14:00')"
            ),
            {"id": uuid.uuid4(), "user_id": user.id},
        )
        export, _ = await service.request_export(session, resources.outbox, user.id)
    spec = resources.registry.get(service.EXPORT_JOB)
    payload = ExportData(export_id=export.id)

    ctx = JobContext(export.job_id, spec.name, spec.queue, 1, spec.policy.attempts, resources)
    with pytest.raises(Exception) as raised:  # noqa: PT011 - whatever reading the row raises
        await export_data(ctx, payload)
    [row] = await _exports(resources, user.id)
    assert row.status == "running", "an attempt that will be retried leaves it running"
    # Its last attempt fails the same way; the runtime hands the final failure to the domain.
    failed = FailedJob(export.job_id, spec.name, payload.model_dump(mode="json"), str(raised.value))
    assert await settle_final_failure(resources, failed)
    [row] = await _exports(resources, user.id)
    assert row.status == "failed"
    assert row.error == f"the export job failed: {raised.value}"
    async with resources.db.transaction() as session:
        _, created = await service.request_export(session, resources.outbox, user.id)
    assert created
