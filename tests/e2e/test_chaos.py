"""Chaos: workers killed at random points, Redis restarted, PostgreSQL unreachable, a blocked loop.
Each time: nothing lost, every effect applied once."""

import asyncio
import random
import signal
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from habitjobs.accounts import repository as accounts_repo
from habitjobs.config import Settings
from habitjobs.queue.names import DEFAULT
from habitjobs.resources import Resources
from tests.support import testjobs
from tests.support.private_redis import PrivateRedis
from tests.support.stores import with_database
from tests.support.tcp_proxy import TcpProxy
from tests.support.users import MakeUser
from tests.support.workers import WorkerProcess
from tests.support.zygote import ForkedWorker, WorkerZygote

pytestmark = pytest.mark.slow
TEST_JOBS = {"HABITJOBS_EXTRA_JOB_MODULES": "tests.support.testjobs"}


async def until(predicate, *, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s}s")
        await asyncio.sleep(0.05)


async def counts(resources: Resources) -> dict[str, int]:
    raw = await resources.producer.queue(DEFAULT).getJobCounts(
        "waiting", "active", "delayed", "completed", "failed"
    )
    return {k: int(v) for k, v in raw.items()}


async def per_key(resources: Resources, key_fn, keys: list[str]) -> list[int]:  # type: ignore[no-untyped-def]
    prefix = resources.settings.queue_prefix
    values = await resources.producer.redis.mget([key_fn(prefix, k) for k in keys])
    return [int(v or 0) for v in values]


def with_redis(settings: Settings, url: str) -> Settings:
    return Settings(
        **{**settings.model_dump(), "redis_url": url, "extra_job_modules": "tests.support.testjobs"}
    )


KILLS = 50
AT_ONCE = 3


async def test_workers_sigkilled_at_random_points_lose_nothing(
    job_resources: Resources, tmp_path: Path
) -> None:
    """Three workers share the queue; one of them, picked at random, is SIGKILLed at a random moment while
    jobs run, and a new one takes its place — 50 times. Every job still completes and applies its effect
    exactly once. (The workers are forked from a zygote: a fresh interpreter per worker would spend
    minutes of CPU on imports alone.)"""
    rng = random.Random(20261128)
    keys = [f"k{i}" for i in range(100)]
    for key in keys:
        await job_resources.producer.enqueue(
            "test.sturdy", {"key": key, "sleep_ms": rng.randint(300, 1500)}, job_id=f"j-{key}"
        )
    # A job hit by many kills is not a poison pill here: allow it to stall as often as it takes.
    zygote = WorkerZygote(job_resources.settings, **TEST_JOBS, HABITJOBS_MAX_STALLED_COUNT="1000")
    spawned = 0

    def spawn() -> ForkedWorker:
        nonlocal spawned
        spawned += 1
        return zygote.spawn(tmp_path / f"w{spawned}.log", "--queue", DEFAULT, "--concurrency", "2")

    alive = [spawn() for _ in range(AT_ONCE)]
    active_at_kill: list[int] = []
    try:
        while len(active_at_kill) < KILLS:
            await asyncio.sleep(rng.uniform(0.1, 0.6))  # a random moment in the middle of the work
            started = [w for w in alive if w.started]
            if not started:
                continue
            victim = rng.choice(started)
            active_at_kill.append((await counts(job_resources))["active"])
            victim.signal(signal.SIGKILL)
            assert await victim.wait_exit() == -signal.SIGKILL  # killed mid-work, not exited on its own
            alive.remove(victim)
            alive.append(spawn())
        alive += [spawn() for _ in range(AT_ONCE)]  # more hands for what is left

        async def all_done() -> bool:
            return (await counts(job_resources))["completed"] == len(keys)

        await until(all_done, timeout_s=90, what="every job completed after the kills")
    finally:
        for worker in alive:
            worker.signal(signal.SIGTERM)
        for worker in alive:
            await worker.wait_exit()
        zygote.close()
    assert len(active_at_kill) == KILLS
    assert sum(1 for n in active_at_kill if n > 0) >= KILLS - 5, f"jobs active at each kill: {active_at_kill}"
    final = await counts(job_resources)
    assert final["failed"] == 0
    assert await per_key(job_resources, testjobs.effects_key, keys) == [1] * len(keys)
    runs = await per_key(job_resources, testjobs.runs_key, keys)
    assert all(r >= 1 for r in runs)
    assert sum(runs) > len(keys), "some job should have been interrupted and run again"


async def test_redis_restarted_while_jobs_wait_and_while_they_run(settings: Settings, tmp_path: Path) -> None:
    server = PrivateRedis(
        tmp_path / "redis",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--maxmemory-policy",
        "noeviction",
    )
    server.start()
    own = with_redis(settings, server.url)
    resources = Resources.open(own)
    worker = None
    try:
        waiting = [f"w{i}" for i in range(20)]
        for key in waiting:
            await resources.producer.enqueue("test.sturdy", {"key": key}, job_id=f"j-{key}")
        server.stop(kill=True)  # SIGKILL: only what the append-only file has survives
        server.start()
        await resources.producer.redis.connection_pool.disconnect()
        assert (await counts(resources))["waiting"] == len(waiting), (
            "jobs waiting before the restart are kept"
        )

        worker = WorkerProcess(own, tmp_path / "w.log", "--queue", DEFAULT, env=TEST_JOBS)
        await worker.wait_started()
        running = [f"r{i}" for i in range(30)]
        for key in running:
            await resources.producer.enqueue("test.sturdy", {"key": key, "sleep_ms": 300}, job_id=f"j-{key}")
        await asyncio.sleep(0.6)
        server.stop(kill=True)
        await asyncio.sleep(1.0)  # down for a second, with jobs in flight
        server.start()
        await resources.producer.redis.connection_pool.disconnect()
        everything = waiting + running

        async def all_done() -> bool:
            return (await counts(resources))["completed"] == len(everything)

        await until(all_done, timeout_s=90, what="every job completed after the Redis restarts")
        assert (await counts(resources))["failed"] == 0
        assert await per_key(resources, testjobs.effects_key, everything) == [1] * len(everything)
    finally:
        if worker:
            worker.signal(signal.SIGTERM)
            await worker.wait_exit()
        await resources.aclose()
        server.stop()


async def test_postgres_unreachable_for_a_while_jobs_retry_and_complete(
    job_resources: Resources,
    tmp_path: Path,
    make_user: MakeUser,
) -> None:
    db_url = urlsplit(job_resources.settings.database_url or "")
    db_name = db_url.path.lstrip("/")
    proxy = TcpProxy(db_url.hostname or "127.0.0.1", db_url.port or 5432)
    proxy.start()
    through_proxy = Settings(
        **{
            **job_resources.settings.model_dump(),
            "database_url": with_database(
                f"postgresql://{db_url.username or 'postgres'}@127.0.0.1:{proxy.port}/x", db_name
            ),
        }
    )
    worker = WorkerProcess(through_proxy, tmp_path / "w.log", "--queue", DEFAULT, env=TEST_JOBS)
    try:
        await worker.wait_started()
        users = [await make_user() for _ in range(5)]  # one export in flight per user
        export_ids = []
        proxy.cut()
        async with job_resources.db.transaction() as session:
            for user in users:
                export = await accounts_repo.create_export(
                    session, user.id, uuid.uuid4(), f"x-{uuid.uuid4()}"
                )
                assert export is not None
                export_ids.append(export.id)
        for export_id in export_ids:
            await job_resources.producer.enqueue(
                "test.export", {"export_id": export_id}, job_id=f"exp-{export_id}"
            )

        async def some_retried() -> bool:
            return (await counts(job_resources))["delayed"] >= 3

        await until(
            some_retried, timeout_s=30, what="jobs failing and waiting to retry while PostgreSQL is down"
        )
        await asyncio.sleep(2.5)  # stay down across more than one backoff
        proxy.restore()

        async def all_done() -> bool:
            return (await counts(job_resources))["completed"] == len(export_ids)

        await until(all_done, timeout_s=60, what="exports completed once PostgreSQL is back")
    finally:
        worker.signal(signal.SIGTERM)
        await worker.wait_exit()
        proxy.close()
    assert (await counts(job_resources))["failed"] == 0
    for export_id in export_ids:
        job = await job_resources.producer.queue(DEFAULT).getJob(f"exp-{export_id}")
        assert int(job.attemptsMade) >= 2, "it failed while the database was away"
        assert any("Connect" in t or "connect" in t or "refused" in t for t in job.stacktrace)
        async with job_resources.db.transaction() as session:
            export = await accounts_repo.get_export(session, export_id)
        assert export is not None
        assert export.status == "done"


async def test_blocking_handler_is_reported_and_not_run_twice(
    job_resources: Resources, tmp_path: Path
) -> None:
    """The job blocks the loop for 4 s while locks live 2 s: without the watchdog the second worker
    would take it over and run it again."""
    workers = [
        WorkerProcess(job_resources.settings, tmp_path / f"w{i}.log", "--queue", DEFAULT, env=TEST_JOBS)
        for i in range(2)
    ]
    try:
        for worker in workers:
            await worker.wait_started()
        job_id = await job_resources.producer.enqueue(
            "test.effect", {"key": "blocker", "block_ms": 4000}, job_id="blk-1"
        )

        async def done() -> bool:
            return (await counts(job_resources))["completed"] == 1

        await until(done, timeout_s=30, what="the blocking job completing")
        await asyncio.sleep(job_resources.settings.recovery_time_s)  # would a second run still start?
        assert await per_key(job_resources, testjobs.runs_key, ["blocker"]) == [1]
    finally:
        for worker in workers:
            worker.signal(signal.SIGTERM)
        for worker in workers:
            await worker.wait_exit()
    logs = "".join(w.output() for w in workers)
    assert "event loop blocked for" in logs
    assert f"test.effect {job_id}" in logs


async def test_process_killed_between_commit_and_enqueue_the_scheduled_relay_enqueues(
    resources: Resources,
    tmp_path: Path,
    make_user: MakeUser,
) -> None:
    import subprocess
    import sys

    from tests.support.workers import process_env

    user = await make_user()
    crashed = subprocess.run(
        [sys.executable, "-m", "tests.support.crash_between_commit_and_enqueue", str(user.id)],
        env=process_env(resources.settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == 17, crashed.stderr
    job_id = crashed.stdout.strip()
    assert await resources.producer.queue(DEFAULT).getJob(job_id) is None
    # A worker for all queues: the outbox.relay scheduler (every second here) finds the row.
    worker = WorkerProcess(
        resources.settings, tmp_path / "w.log", env={"HABITJOBS_OUTBOX_RELAY_EVERY_MS": "1000"}
    )
    try:
        await worker.wait_started()

        async def completed() -> bool:
            job = await resources.producer.queue(DEFAULT).getJob(job_id)
            return (
                job is not None and await resources.producer.queue(DEFAULT).getJobState(job_id) == "completed"
            )

        await until(completed, timeout_s=30, what="the relayed job completing")
    finally:
        worker.signal(signal.SIGTERM)
        await worker.wait_exit()
    schedulers = await resources.producer.queue("scheduler").getJobSchedulers()
    assert [s["key"] for s in schedulers].count("outbox-relay") == 1
