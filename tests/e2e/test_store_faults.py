"""Stores that stall or lose writes, with real processes and private servers where a test stops one:

- Redis rolled back to an older copy after acknowledging jobs: every accepted upload and delivery still
  completes, once, within the reconciliation's bound;
- PostgreSQL black-holed (a proxy that stops forwarding without closing): the API answers 503 with
  Retry-After within its deadline — two requests on one keep-alive connection alike — then recovers;
- Redis paused (SIGSTOP): the same; an upload is still stored and its job enqueued later;
- the stalled limit reached: the batch is failed with a reason, and `habitjobs jobs retry` applies it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select

from habitjobs.config import Settings
from habitjobs.habits.models import Habit
from habitjobs.push.fakes import RunningFakes
from habitjobs.push.models import PushDelivery
from habitjobs.queue.models import OutboxRow
from habitjobs.queue.names import PUSH, SYNC
from habitjobs.resources import Resources
from habitjobs.sync import service as sync_service
from habitjobs.sync.models import SyncBatch
from tests.fakes.push import add_device, eventually, fakes_for_module, notify, token
from tests.support.http1 import Answer, KeepAliveConnection
from tests.support.net import free_port, wait_http_ok
from tests.support.private_redis import PrivateRedis
from tests.support.stores import with_database
from tests.support.sync import Device, accept, push_and_apply
from tests.support.tcp_proxy import TcpProxy
from tests.support.users import MakeUser
from tests.support.workers import ApiProcess, WorkerProcess, process_env

pytestmark = pytest.mark.slow

# How much later than the documented bound a check may still pass: process start-up and a busy machine.
SLACK_S = 3.0
UNAVAILABLE = "a store is unavailable"


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFakes]:
    yield from fakes_for_module(tmp_path_factory)


def one_upload() -> dict[str, object]:
    phone = Device()
    habit = uuid.uuid4()
    phone.record("habit", "upsert", habit, 0, {"name": "Stretch"})
    phone.record("habit", "patch", habit, 10, {"name": "Stretch well"})
    return phone.batch()


async def answer_in_time(
    conn: KeepAliveConnection, method: str, path: str, limit_s: float, **kwargs: object
) -> Answer:
    """The request's answer; fails if it takes longer than ``limit_s`` (the documented bound) + slack."""
    return await asyncio.wait_for(conn.request(method, path, **kwargs), timeout=limit_s + SLACK_S)  # type: ignore[arg-type]


def assert_unavailable(answer: Answer) -> None:
    assert answer.status == 503, answer.body
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["error"]["code"] == "unavailable"


def assert_quiet(log: str, *, episodes: int) -> None:
    """One line per outage episode, and no traceback for any of the 503s."""
    assert log.count(f"API: {UNAVAILABLE}") == episodes, log
    assert "Traceback" not in log, log


@pytest.mark.timeout(120)
async def test_redis_rolled_back_to_an_older_copy_every_accepted_upload_and_delivery_completes_once(
    settings: Settings,
    fakes: RunningFakes,
    make_user: MakeUser,
    tmp_path: Path,
) -> None:
    data = tmp_path / "redis"
    server = PrivateRedis(
        data, "--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction"
    )
    server.start()
    own = settings.model_copy(
        update={"redis_url": server.url, "reconcile_every_ms": 1000, "reconcile_grace_s": 1}
    )
    resources = Resources.open(own)
    api = ApiProcess(own, tmp_path / "api.log", free_port())
    worker: WorkerProcess | None = None
    try:
        users = [await make_user() for _ in range(20)]
        tokens = {user.id: token("ok") for user in users[:10]}
        for user_id, device_token in tokens.items():
            await add_device(resources, user_id, device_token)
        await wait_http_ok(f"{api.base_url}/healthz")

        # The copy Redis is rolled back to later: taken before any of the work below reached it.
        server.stop()
        shutil.copytree(data, tmp_path / "redis-copy")
        server.start()

        batch_ids: dict[uuid.UUID, str] = {}
        async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as http:
            for user in users:
                body = one_upload()
                accepted = await http.post("/v1/sync/push", json=body, headers=user.headers)
                assert accepted.status_code == 202, accepted.text
                batch_ids[user.id] = str(body["batch_id"])
        deliveries: list[uuid.UUID] = []
        for user_id in tokens:
            deliveries += await notify(resources, user_id)

        # Acknowledged: every job is in Redis, every outbox row marked — the relay has nothing to do.
        async def all_marked() -> bool:
            async with resources.db.transaction() as session:
                return await session.scalar(select(func.count()).where(OutboxRow.enqueued_at.is_(None))) == 0

        await resources.outbox.settle()
        await eventually(all_marked, timeout_s=10)
        # Sync jobs are fair, so they wait as "prioritized" (their rank among the user's jobs).
        queued = await resources.producer.queue(SYNC).getJobCounts("waiting", "prioritized")
        assert sum(queued.values()) == len(users)
        assert (await resources.producer.queue(PUSH).getJobCounts("waiting"))["waiting"] >= 1

        # The host crashes; Redis comes back from the older copy: the acknowledged jobs are gone.
        server.stop(kill=True)
        shutil.rmtree(data)
        shutil.copytree(tmp_path / "redis-copy", data)
        server.start()
        await resources.producer.redis.connection_pool.disconnect()
        for queue in (SYNC, PUSH):
            queued = await resources.producer.queue(queue).getJobCounts("waiting", "prioritized")
            assert sum(queued.values()) == 0
        assert await resources.outbox.relay(grace_s=0) == 0

        worker = WorkerProcess(
            own,
            tmp_path / "worker.log",
            env={
                **fakes.env,
                "HABITJOBS_RECONCILE_EVERY_MS": str(own.reconcile_every_ms),
                "HABITJOBS_RECONCILE_GRACE_S": str(own.reconcile_grace_s),
            },
        )
        await worker.wait_started()

        async def everything_done() -> bool:
            async with resources.db.transaction() as session:
                open_batches = await session.scalar(select(func.count()).where(SyncBatch.status != "applied"))
                open_deliveries = await session.scalar(
                    select(func.count()).where(PushDelivery.status != "sent")
                )
            return open_batches == 0 and open_deliveries == 0

        # The documented bound (grace + one period) after the worker is up, plus the work itself.
        await eventually(everything_done, timeout_s=own.reconcile_bound_s + 15)

        async with resources.db.transaction() as session:
            batches = (await session.scalars(select(SyncBatch))).all()
            habits = await session.scalar(select(func.count()).select_from(Habit))
        assert {str(b.batch_id) for b in batches} == set(batch_ids.values())
        for merged in batches:  # merged once: nothing was found merged already
            assert (merged.result["applied"], merged.result["already_applied"]) == (2, 0), merged.result
        assert habits == len(users)
        assert {t: fakes.log.count(t) for t in tokens.values()} == {t: 1 for t in tokens.values()}
        assert "Redis had lost" in worker.output()
    finally:
        if worker is not None:
            worker.signal(signal.SIGTERM)
            await worker.wait_exit()
        api.stop()
        await resources.aclose()
        server.stop()


@pytest.mark.timeout(90)
async def test_postgres_black_holed_the_api_answers_503_in_time_then_recovers(
    settings: Settings,
    make_user: MakeUser,
    tmp_path: Path,
) -> None:
    db_url = urlsplit(settings.database_url or "")
    proxy = TcpProxy(db_url.hostname or "127.0.0.1", db_url.port or 5432)
    proxy.start()
    through = settings.model_copy(
        update={
            "database_url": with_database(
                f"postgresql://{db_url.username or 'postgres'}@127.0.0.1:{proxy.port}/x",
                db_url.path.lstrip("/"),
            )
        }
    )
    api = ApiProcess(through, tmp_path / "api.log", free_port())
    limit = through.api_deadline_s
    try:
        user = await make_user()
        await wait_http_ok(f"{api.base_url}/healthz")
        async with KeepAliveConnection("127.0.0.1", api.port) as conn:
            assert (await conn.request("GET", "/v1/me", headers=user.headers)).status == 200
            proxy.blackhole()
            # Several requests, one after another on the same keep-alive connection: each gets its 503 on
            # time and the connection stays usable for the next.
            assert_unavailable(await answer_in_time(conn, "GET", "/v1/me", limit, headers=user.headers))
            assert_unavailable(
                await answer_in_time(
                    conn, "POST", "/v1/sync/push", limit, headers=user.headers, body=one_upload()
                )
            )
            assert_unavailable(await answer_in_time(conn, "GET", "/v1/habits", limit, headers=user.headers))
            assert conn.requests == 4
            proxy.restore()

            async def recovered() -> bool:
                return (await conn.request("GET", "/v1/me", headers=user.headers)).status == 200

            await eventually(recovered, timeout_s=limit + SLACK_S)
            upload = one_upload()
            assert (
                await conn.request("POST", "/v1/sync/push", headers=user.headers, body=upload)
            ).status == 202
        assert_quiet(api.output(), episodes=1)
    finally:
        api.stop()
        proxy.close()


@pytest.mark.timeout(90)
async def test_redis_paused_the_api_answers_in_time_then_recovers(
    settings: Settings,
    make_user: MakeUser,
    tmp_path: Path,
) -> None:
    server = PrivateRedis(tmp_path / "redis", "--maxmemory-policy", "noeviction")
    server.start()
    own = settings.model_copy(update={"redis_url": server.url})
    resources = Resources.open(own)
    api = ApiProcess(own, tmp_path / "api.log", free_port())
    limit = own.api_deadline_s
    assert server.proc is not None
    pid = server.proc.pid
    try:
        user = await make_user()
        await wait_http_ok(f"{api.base_url}/healthz")
        async with KeepAliveConnection("127.0.0.1", api.port) as conn:
            export = await conn.request("POST", "/v1/me/exports", headers=user.headers)
            assert export.status == 202
            status_url = export.json()["status_url"]
            assert (await conn.request("GET", status_url, headers=user.headers)).status == 200

            os.kill(pid, signal.SIGSTOP)
            try:
                # Needs Redis to answer: 503 on time, twice on the same connection.
                assert_unavailable(await answer_in_time(conn, "GET", status_url, limit, headers=user.headers))
                assert_unavailable(await answer_in_time(conn, "GET", status_url, limit, headers=user.headers))
                # Needs Redis only after the upload is stored: accepted on time, its job enqueued later.
                upload = one_upload()
                stored = await answer_in_time(
                    conn, "POST", "/v1/sync/push", limit, headers=user.headers, body=upload
                )
                assert stored.status == 202, stored.body
                async with httpx.AsyncClient(timeout=limit + SLACK_S) as http:
                    assert (await http.get(f"{api.base_url}/readyz")).status_code == 503
            finally:
                os.kill(pid, signal.SIGCONT)

            async def recovered() -> bool:
                return (await conn.request("GET", status_url, headers=user.headers)).status == 200

            await eventually(recovered, timeout_s=limit + SLACK_S)
        # The upload stored while Redis was paused reaches its queue through the relay, under its own id.
        job_id = sync_service.apply_job_id(uuid.UUID(str(upload["batch_id"])))
        assert await resources.producer.queue(SYNC).getJob(job_id) is None
        assert await resources.outbox.relay(grace_s=0) == 1
        assert await resources.producer.queue(SYNC).getJob(job_id) is not None
        log = api.output()
        assert_quiet(log, episodes=1)
        assert log.count(UNAVAILABLE) == 2  # the API's episode, and the outbox's (the enqueue it deferred)
    finally:
        api.stop()
        await resources.aclose()
        server.stop()


@pytest.mark.timeout(120)
async def test_the_stalled_limit_fails_the_batch_with_a_reason_and_jobs_retry_applies_it(
    settings: Settings,
    make_user: MakeUser,
    tmp_path: Path,
) -> None:
    """A merge that cannot finish (its user's rows are locked) is taken over after each worker dies; after
    more deaths than ``HABITJOBS_MAX_STALLED_COUNT`` the next worker fails it, and the phone reads why."""
    resources = Resources.open(settings)
    env = {"HABITJOBS_MAX_STALLED_COUNT": "1"}
    workers: list[WorkerProcess] = []
    locker = await asyncpg.connect(settings.database_url)
    try:
        user = await make_user()
        phone = Device()
        habit = uuid.uuid4()
        phone.record("habit", "upsert", habit, 0, {"name": "Read"})
        await push_and_apply(resources, user.id, phone.batch())  # the user's sync state row exists now
        phone.record("habit", "patch", habit, 10, {"name": "Read more"})
        batch_id = await accept(resources, user.id, phone.batch())
        job_id = sync_service.apply_job_id(batch_id)
        job_key = f"{settings.queue_prefix}:{SYNC}:{job_id}"
        queue = resources.producer.queue(SYNC)

        # Hold the user's rows: the merge blocks on its first statement, so its worker dies mid-job.
        lock = locker.transaction()
        await lock.start()
        await locker.execute("SELECT 1 FROM user_sync_state WHERE user_id = $1 FOR UPDATE", user.id)

        async def taken(stalls: int) -> bool:
            stalled = int(await resources.producer.redis.hget(job_key, "stc") or 0)
            return stalled == stalls and await queue.getJobState(job_id) == "active"

        for stalls in (0, 1):  # the first run, then the one after the first worker died
            worker = WorkerProcess(settings, tmp_path / f"w{stalls}.log", "--queue", SYNC, env=env)
            workers.append(worker)
            await worker.wait_started()
            await eventually(lambda stalls=stalls: taken(stalls), timeout_s=20)  # type: ignore[misc]
            worker.signal(signal.SIGKILL)
            assert await worker.wait_exit() == -signal.SIGKILL

        last = WorkerProcess(settings, tmp_path / "w2.log", "--queue", SYNC, env=env)
        workers.append(last)
        await last.wait_started()

        async def batch_failed() -> bool:
            async with resources.db.transaction() as session:
                found = await session.get(SyncBatch, batch_id)
            return found is not None and found.status == "failed"

        await eventually(batch_failed, timeout_s=20)
        async with resources.db.transaction() as session:
            failed = await session.get(SyncBatch, batch_id)
        assert failed is not None
        assert failed.error == sync_service.job_failure_message("job stalled more than allowable limit")
        await lock.rollback()

        retried = subprocess.run(
            [sys.executable, "-m", "habitjobs", "jobs", "retry", SYNC, job_id],
            env=process_env(settings),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert retried.returncode == 0, retried.stderr

        async def batch_applied() -> bool:
            async with resources.db.transaction() as session:
                found = await session.get(SyncBatch, batch_id)
            return found is not None and found.status == "applied"

        await eventually(batch_applied, timeout_s=20)
        async with resources.db.transaction() as session:
            applied = await session.get(SyncBatch, batch_id)
            renamed = await session.get(Habit, habit)
        assert applied is not None
        assert (applied.error, applied.result["applied"]) == (None, 1)
        assert renamed is not None
        assert renamed.name == "Read more"
    finally:
        await locker.close()
        for worker in workers:
            if worker.proc.poll() is None:
                worker.signal(signal.SIGTERM)
                await worker.wait_exit()
        await resources.aclose()
