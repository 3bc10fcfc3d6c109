"""Reconciliation and final failures, in process against the real stores: rows whose job Redis lost get it
back under the same id; a job that ends failed — however — leaves its rows saying so; an operator's retry
takes them up again."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import pytest
from sqlalchemy import func, select, update

from habitjobs.accounts import service as accounts_service
from habitjobs.accounts.models import DataExport
from habitjobs.config import Settings
from habitjobs.push.fakes import RunningFakes
from habitjobs.push.service import JOB_FAILED, SEND_JOB
from habitjobs.queue.failures import removed_key
from habitjobs.queue.models import OutboxRow
from habitjobs.queue.names import DEFAULT, PUSH, SCHEDULER, SYNC
from habitjobs.queue.operations import JobOperations
from habitjobs.queue.reconcile import read_stats, reconcile
from habitjobs.queue.registry import Registry, Schedule
from habitjobs.queue.runtime import WorkerRuntime
from habitjobs.resources import Resources
from habitjobs.sync import service as sync_service
from habitjobs.sync.models import SyncBatch, SyncBatchPayload
from tests.fakes.push import add_device, deliveries, eventually, fakes_for_module, notify, settings_for, token
from tests.support.sync import Device, accept
from tests.support.users import MakeUser
from tests.support.workers import drain, process_env

STALLED = "job stalled more than allowable limit"


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFakes]:
    yield from fakes_for_module(tmp_path_factory)


@pytest.fixture
async def res(settings: Settings, fakes: RunningFakes) -> AsyncIterator[Resources]:
    resources = Resources.open(settings_for(settings, fakes, reconcile_grace_s=0, reconcile_limit=1000))
    yield resources
    await resources.aclose()


async def lose(resources: Resources, queue: str, job_id: str) -> None:
    """What Redis losing an acknowledged write does to a job: every trace of it is gone."""
    assert await resources.producer.queue(queue).remove(job_id) == 1
    assert await resources.producer.queue(queue).getJob(job_id) is None


async def batch(resources: Resources, batch_id: uuid.UUID) -> SyncBatch:
    async with resources.db.transaction() as session:
        found = await session.get(SyncBatch, batch_id)
    assert found is not None
    return found


async def send_job_of(resources: Resources) -> str:
    async with resources.db.transaction() as session:
        (job_id,) = (
            await session.scalars(select(OutboxRow.job_id).where(OutboxRow.job_name == SEND_JOB))
        ).all()
    return job_id


async def upload(resources: Resources, user_id: uuid.UUID) -> uuid.UUID:
    phone = Device()
    phone.record("habit", "upsert", uuid.uuid4(), 0, {"name": "Stretch"})
    return await accept(resources, user_id, phone.batch())


async def test_nothing_wrong_nothing_done(res: Resources, make_user: MakeUser) -> None:
    user = await make_user()
    waiting = [await upload(res, user.id) for _ in range(3)]
    report = await reconcile(res)
    assert report.as_dict() == {
        "checked": 3,  # three batches wait, and their jobs are in Redis
        "requeued": 0,
        "settled": 0,
        "removed": 0,
        "completed_waiting": 0,
    }
    await drain(res, queues=[SYNC])
    assert {(await batch(res, b)).status for b in waiting} == {"applied"}
    assert (await reconcile(res)).checked == 0  # nothing waits any more
    stats = await read_stats(res.producer)
    assert (stats["runs"], stats["last_checked"], stats["total_checked"]) == ("2", "0", "3")


async def test_a_lost_merge_job_is_enqueued_again_under_its_id_and_applies_once(
    res: Resources,
    make_user: MakeUser,
) -> None:
    user = await make_user()
    lost, kept = await upload(res, user.id), await upload(res, user.id)
    await lose(res, SYNC, sync_service.apply_job_id(lost))

    report = await reconcile(res)
    assert (report.checked, report.requeued) == (2, 1)
    assert await res.producer.queue(SYNC).getJob(sync_service.apply_job_id(lost)) is not None
    assert (await reconcile(res)).requeued == 0  # back in Redis: a second run changes nothing

    await drain(res, queues=[SYNC])
    for batch_id in (lost, kept):
        merged = await batch(res, batch_id)
        assert merged.status == "applied"
        assert (merged.result["applied"], merged.result["already_applied"]) == (1, 0)
    async with res.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(SyncBatch)) == 2


async def test_each_run_looks_at_most_at_the_limit_and_the_next_one_continues(
    settings: Settings,
    make_user: MakeUser,
) -> None:
    resources = Resources.open(settings.model_copy(update={"reconcile_grace_s": 0, "reconcile_limit": 2}))
    try:
        user = await make_user()
        uploads = [await upload(resources, user.id) for _ in range(5)]
        for batch_id in uploads:
            await lose(resources, SYNC, sync_service.apply_job_id(batch_id))
        requeued = [(await reconcile(resources)).requeued for _ in range(4)]
        assert requeued == [2, 2, 1, 0]  # 5 lost jobs, 2 per run; the fourth run starts over and finds none
        queue = resources.producer.queue(SYNC)
        for batch_id in uploads:
            assert await queue.getJob(sync_service.apply_job_id(batch_id)) is not None
    finally:
        await resources.aclose()


async def test_lost_push_jobs_come_back_with_their_original_id_and_send_once(
    res: Resources, fakes: RunningFakes, make_user: MakeUser
) -> None:
    user = await make_user()
    tokens = [token("ok") for _ in range(3)]
    for device_token in tokens:
        await add_device(res, user.id, device_token)
    ids = await notify(res, user.id)
    job_id = await send_job_of(res)
    assert await res.producer.queue(PUSH).getJob(job_id) is not None
    await lose(res, PUSH, job_id)

    report = await reconcile(res)
    assert report.requeued == 1
    job = await res.producer.queue(PUSH).getJob(job_id)
    assert job is not None
    assert sorted(job.data["delivery_ids"]) == sorted(str(i) for i in ids)

    await drain(res, queues=[PUSH])
    assert {d.status for d in (await deliveries(res, ids)).values()} == {"sent"}
    assert [fakes.log.count(t) for t in tokens] == [1, 1, 1]


async def test_a_lost_export_job_is_enqueued_again(res: Resources, make_user: MakeUser) -> None:
    user = await make_user()
    async with res.db.transaction() as session:
        export, _ = await accounts_service.request_export(session, res.outbox, user.id)
    await lose(res, DEFAULT, export.job_id)
    assert (await reconcile(res)).requeued == 1
    await drain(res, queues=[DEFAULT])
    async with res.db.transaction() as session:
        done = await session.get(DataExport, export.id)
    assert done is not None
    assert done.status == "done"


async def test_a_failure_whose_hook_never_ran_is_settled_by_the_reconciliation(
    res: Resources,
    make_user: MakeUser,
) -> None:
    """The worker that failed the job died before telling the domain (here: its registry had no hook)."""
    user = await make_user()
    batch_id = await upload(res, user.id)
    async with res.db.transaction() as session:
        await session.execute(
            update(SyncBatchPayload)
            .where(SyncBatchPayload.batch_id == batch_id)
            .values(payload=[{"not": "a mutation"}])
        )
    forgetful = Registry(replace(spec, on_final_failure=None) for spec in res.registry)
    blind = Resources.open(res.settings, registry=forgetful)
    try:
        await drain(blind, queues=[SYNC])
    finally:
        await blind.aclose()
    assert (await batch(res, batch_id)).status == "queued"  # failed in Redis, the batch never told

    report = await reconcile(res)
    assert (report.settled, report.requeued) == (1, 0)
    failed = await batch(res, batch_id)
    assert failed.status == "failed"
    assert (failed.error or "").startswith("job_failed: ")
    assert "malformed" in (failed.error or "")


async def test_the_stalled_limit_fails_the_batch_with_a_reason_and_a_retry_applies_it(
    res: Resources,
    make_user: MakeUser,
) -> None:
    """bullmq marks a job that stalled too often (the ``defa`` field its stalled check sets) and the next
    worker to take it fails it without running it; that failure reaches the batch like any other."""
    user = await make_user()
    batch_id = await upload(res, user.id)
    job_id = sync_service.apply_job_id(batch_id)
    await res.producer.redis.hset(f"{res.settings.queue_prefix}:{SYNC}:{job_id}", "defa", STALLED)
    await drain(res, queues=[SYNC])
    view = await JobOperations(res.producer).job(SYNC, job_id)
    assert (view.state, view.failed_reason) == ("failed", STALLED)
    failed = await batch(res, batch_id)
    assert failed.status == "failed"
    assert failed.error == sync_service.job_failure_message(STALLED)

    await JobOperations(res.producer).retry(SYNC, job_id)  # what `habitjobs jobs retry` does
    await drain(res, queues=[SYNC])
    applied = await batch(res, batch_id)
    assert (applied.status, applied.error, applied.result["applied"]) == ("applied", None, 1)
    assert "job_failed" not in applied.result


async def test_an_operator_removing_a_job_fails_its_rows_and_it_is_not_brought_back(
    res: Resources,
    make_user: MakeUser,
) -> None:
    user = await make_user()
    batch_id = await upload(res, user.id)
    job_id = sync_service.apply_job_id(batch_id)
    await JobOperations(res.producer).remove(SYNC, job_id)
    assert await res.producer.redis.hexists(removed_key(res.settings.queue_prefix), job_id)

    report = await reconcile(res)
    assert (report.removed, report.requeued) == (1, 0)
    failed = await batch(res, batch_id)
    assert failed.status == "failed"
    assert "removed by an operator" in (failed.error or "")
    assert await res.producer.queue(SYNC).getJob(job_id) is None
    assert not await res.producer.redis.hexists(removed_key(res.settings.queue_prefix), job_id)
    assert (await reconcile(res)).as_dict()["requeued"] == 0


async def test_a_push_job_that_fails_for_good_fails_its_deliveries_and_a_retry_sends_them(
    res: Resources, fakes: RunningFakes, make_user: MakeUser
) -> None:
    user = await make_user()
    device_token = token("ok")
    await add_device(res, user.id, device_token)
    ids = await notify(res, user.id)
    job_id = await send_job_of(res)
    await res.producer.redis.hset(f"{res.settings.queue_prefix}:{PUSH}:{job_id}", "defa", STALLED)
    await drain(res, queues=[PUSH])
    (row,) = (await deliveries(res, ids)).values()
    assert (row.status, row.last_error) == ("failed", f"{JOB_FAILED}{STALLED}")
    assert fakes.log.count(device_token) == 0

    await JobOperations(res.producer).retry(PUSH, job_id)
    await drain(res, queues=[PUSH])
    (row,) = (await deliveries(res, ids)).values()
    assert row.status == "sent"
    assert fakes.log.count(device_token) == 1


async def test_an_export_job_that_fails_for_good_fails_the_export_with_its_reason(
    res: Resources,
    make_user: MakeUser,
) -> None:
    user = await make_user()
    async with res.db.transaction() as session:
        export, _ = await accounts_service.request_export(session, res.outbox, user.id)
    await res.producer.redis.hset(f"{res.settings.queue_prefix}:{DEFAULT}:{export.job_id}", "defa", STALLED)
    await drain(res, queues=[DEFAULT])
    async with res.db.transaction() as session:
        failed = await session.get(DataExport, export.id)
    assert failed is not None
    assert (failed.status, failed.error) == ("failed", f"the export job failed: {STALLED}")

    await JobOperations(res.producer).retry(DEFAULT, export.job_id)
    await drain(res, queues=[DEFAULT])
    async with res.db.transaction() as session:
        done = await session.get(DataExport, export.id)
    assert done is not None
    assert (done.status, done.error) == ("done", None)


async def test_a_worker_registers_schedules_again_when_redis_lost_them(settings: Settings) -> None:
    quick = settings.model_copy(update={"reconcile_every_ms": 1000})
    resources = Resources.open(quick)
    schedule = Schedule("test-relay", "outbox.relay", every_ms=60_000)
    runtime = WorkerRuntime(resources, queues=[SCHEDULER], schedules=[schedule])
    await runtime.start()
    queue = resources.producer.queue(SCHEDULER)
    try:
        assert [s["key"] for s in await queue.getJobSchedulers()] == ["test-relay"]
        prefix = f"{quick.queue_prefix}:{SCHEDULER}"
        keys = [key async for key in resources.producer.redis.scan_iter(match=f"{prefix}:repeat*")]
        await resources.producer.redis.delete(*keys)  # Redis lost the scheduler and its next firing
        await resources.producer.redis.delete(f"{prefix}:delayed")
        assert await queue.getJobSchedulers() == []

        async def registered_again() -> bool:
            return [s["key"] for s in await queue.getJobSchedulers()] == ["test-relay"]

        await eventually(registered_again, timeout_s=10)
    finally:
        await runtime.stop(grace_s=5)
        await resources.aclose()


async def test_an_invalid_payload_fails_the_batch_its_job_id_names(
    res: Resources,
    make_user: MakeUser,
) -> None:
    """Another producer (NestJS) adds the merge job with a payload that does not validate: the job fails at
    once, and its batch — named by the job id — says why."""
    user = await make_user()
    batch_id = await upload(res, user.id)
    job_id = sync_service.apply_job_id(batch_id)
    await lose(res, SYNC, job_id)
    await res.producer.queue(SYNC).add(
        sync_service.APPLY_JOB, {"batch_id": str(batch_id), "priority": "high"}, {"jobId": job_id}
    )
    await drain(res, queues=[SYNC])
    failed = await batch(res, batch_id)
    assert failed.status == "failed"
    assert "invalid payload for sync.apply_batch" in (failed.error or "")


async def test_the_cli_shows_what_the_reconciliation_did(
    res: Resources,
    make_user: MakeUser,
) -> None:
    user = await make_user()
    await lose(res, SYNC, sync_service.apply_job_id(await upload(res, user.id)))
    await reconcile(res)
    env = process_env(res.settings)
    shown = subprocess.run(
        [sys.executable, "-m", "habitjobs", "jobs", "reconciliation", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    stats = json.loads(shown.stdout)
    assert (stats["runs"], stats["last_requeued"], stats["total_requeued"]) == (1, 1, 1)
    counts = subprocess.run(
        [sys.executable, "-m", "habitjobs", "jobs", "counts"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert counts.returncode == 0, counts.stderr
    assert "1 enqueued again (lost by Redis)" in " ".join(counts.stdout.split())
