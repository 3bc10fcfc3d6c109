"""Node BullMQ (npm, pinned in ``tests/interop/node``) and our Python runtime on the same queues.

What a NestJS service does — ``queue.add(name, data, opts)`` on our prefix and queue names, reading
return values, failure reasons and stack traces back; or running a Node worker for jobs our producer
enqueued — is done here by small scripts in ``tests/interop/node`` against the test's Redis prefix.
``scripts/test`` installs their dependencies (``npm ci``) when ``node`` is on PATH.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from habitjobs.accounts import repository as accounts_repo
from habitjobs.accounts.service import EXPORT_JOB, export_job_id
from habitjobs.config import Settings
from habitjobs.queue.inspect import JobView, get_job
from habitjobs.queue.names import DEFAULT
from habitjobs.resources import Resources
from tests.support import testjobs
from tests.support.users import MakeUser
from tests.support.workers import drain, process_env

NODE = shutil.which("node")
NODE_DIR = Path(__file__).parent / "node"
NODE_BULLMQ = "6.7.0"

pytestmark = [
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH"),
    pytest.mark.timeout(90),
]


@pytest.fixture(scope="module", autouse=True)
def node_bullmq_installed() -> None:
    manifest = NODE_DIR / "node_modules" / "bullmq" / "package.json"
    if not manifest.exists():
        pytest.fail(f"Node dependencies are missing: run `npm ci` in {NODE_DIR} (scripts/test does it)")
    installed = json.loads(manifest.read_text())["version"]
    assert installed == NODE_BULLMQ, f"node_modules has bullmq {installed}; run `npm ci` in {NODE_DIR}"


async def start_node(script: str, argument: Any, settings: Settings) -> asyncio.subprocess.Process:
    assert NODE is not None
    return await asyncio.create_subprocess_exec(
        NODE,
        str(NODE_DIR / script),
        json.dumps(argument),
        cwd=NODE_DIR,
        env=process_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def node(script: str, argument: Any, settings: Settings, *, timeout_s: float = 30.0) -> Any:
    """Run ``tests/interop/node/<script>`` with one JSON argument; returns its JSON answer."""
    proc = await start_node(script, argument, settings)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise AssertionError(f"node {script} exited with {proc.returncode}:\n{err.decode(errors='replace')}")
    return json.loads(out.decode().strip().splitlines()[-1])


async def next_line(proc: asyncio.subprocess.Process, *, timeout_s: float = 30.0) -> Any:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout_s)
    if not line:
        assert proc.stderr is not None
        err = await proc.stderr.read()
        raise AssertionError(f"node exited early:\n{err.decode(errors='replace')}")
    return json.loads(line)


async def node_add(settings: Settings, *jobs: dict[str, Any]) -> list[str]:
    ids: list[str] = await node("add.mjs", [{"queue": DEFAULT, "opts": {}, **job} for job in jobs], settings)
    return ids


async def node_show(settings: Settings, *ids: str, queue: str = DEFAULT) -> dict[str, dict[str, Any]]:
    views: list[dict[str, Any] | None] = await node("show.mjs", {"queue": queue, "ids": list(ids)}, settings)
    assert all(v is not None for v in views), f"Node does not see all of {ids}: {views}"
    return {str(v["id"]): v for v in views if v is not None}


async def python_view(resources: Resources, job_id: str) -> JobView:
    view = await get_job(resources.producer, DEFAULT, job_id)
    assert view is not None, f"job {job_id} does not exist"
    return view


async def effects(resources: Resources, key: str) -> int:
    prefix = resources.settings.queue_prefix
    return int(await resources.producer.redis.get(testjobs.effects_key(prefix, key)) or 0)


# --- Node produces, our worker consumes ---------------------------------------------------------


async def test_a_job_added_by_node_runs_on_our_worker_and_node_reads_its_result(
    job_resources: Resources,
) -> None:
    settings = job_resources.settings
    ids = await node_add(
        settings,
        {"name": "test.effect", "data": {"key": "from-node"}, "opts": {"jobId": "node-effect-1"}},
        # The same deterministic id again: BullMQ keeps the first job, whoever adds it.
        {"name": "test.effect", "data": {"key": "from-node"}, "opts": {"jobId": "node-effect-1"}},
    )
    assert ids == ["node-effect-1", "node-effect-1"]
    await drain(job_resources, queues=[DEFAULT])

    shown = (await node_show(settings, "node-effect-1"))["node-effect-1"]
    assert shown["state"] == "completed"
    assert shown["returnvalue"] == {"key": "from-node", "run": 1}
    assert shown["attemptsMade"] == 1
    assert await effects(job_resources, "from-node") == 1


async def test_our_worker_applies_its_own_retry_policy_to_jobs_node_added(job_resources: Resources) -> None:
    # The producer asks for one attempt and a one-minute backoff; test.effect's policy says three
    # attempts, 1–2 s apart. The worker's policy wins.
    await node_add(
        job_resources.settings,
        {
            "name": "test.effect",
            "data": {"key": "flaky", "fail_times": 2},
            "opts": {"jobId": "node-flaky", "attempts": 1, "backoff": {"type": "fixed", "delay": 60_000}},
        },
    )
    await drain(job_resources, queues=[DEFAULT], timeout_s=30)

    shown = (await node_show(job_resources.settings, "node-flaky"))["node-flaky"]
    assert shown["state"] == "completed"
    assert shown["attemptsMade"] == 3
    assert shown["returnvalue"] == {"key": "flaky", "run": 3}
    assert len(shown["stacktrace"]) == 2  # the two failed attempts
    prefix = job_resources.settings.queue_prefix
    times = [
        float(t)
        for t in await job_resources.producer.redis.lrange(testjobs.attempt_times_key(prefix, "flaky"), 0, -1)
    ]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 2
    assert all(0.9 <= gap < 10 for gap in gaps), gaps


async def test_node_priorities_and_delays_are_obeyed_by_our_worker(job_resources: Resources) -> None:
    # All four count runs on one key, so with one job at a time the returned `run` is the order.
    def job(job_id: str, **opts: Any) -> dict[str, Any]:
        return {"name": "test.effect", "data": {"key": "order"}, "opts": {"jobId": job_id, **opts}}

    await node_add(
        job_resources.settings,
        # Priority too: a delayed job without one would go ahead of all prioritized jobs once due.
        job("later", delay=1_500, priority=100),
        job("third", priority=30),
        job("first", priority=1),
        job("second", priority=2),
    )
    await drain(job_resources, queues=[DEFAULT], concurrency=1, timeout_s=30)

    shown = await node_show(job_resources.settings, "first", "second", "third", "later")
    assert {k: v["returnvalue"]["run"] for k, v in shown.items()} == {
        "first": 1,
        "second": 2,
        "third": 3,
        "later": 4,
    }
    later = shown["later"]
    assert later["processedOn"] - later["timestamp"] >= 1_500


async def test_a_bad_payload_from_node_fails_at_once_with_a_reason_node_can_read(
    job_resources: Resources,
) -> None:
    await node_add(
        job_resources.settings,
        {"name": "test.effect", "data": {"key": 7, "colour": "red"}, "opts": {"jobId": "bad", "attempts": 5}},
        {"name": "test.nonexistent", "data": {}, "opts": {"jobId": "unknown"}},
    )
    await drain(job_resources, queues=[DEFAULT])

    shown = await node_show(job_resources.settings, "bad", "unknown")
    assert shown["bad"]["state"] == "failed"
    assert shown["bad"]["attemptsMade"] == 1
    assert "invalid payload for test.effect" in shown["bad"]["failedReason"]
    assert "key" in shown["bad"]["failedReason"]
    assert "colour" in shown["bad"]["failedReason"]
    assert shown["unknown"]["state"] == "failed"
    assert "unknown job name 'test.nonexistent'" in shown["unknown"]["failedReason"]


async def test_a_real_job_added_by_node_with_its_deterministic_id(
    resources: Resources, make_user: MakeUser
) -> None:
    user = await make_user()
    export_id = uuid.uuid4()
    async with resources.db.transaction() as session:
        await accounts_repo.create_export(session, user.id, export_id, export_job_id(export_id))

    job_id = export_job_id(export_id)
    await node_add(
        resources.settings,
        {"name": EXPORT_JOB, "data": {"export_id": str(export_id)}, "opts": {"jobId": job_id}},
    )
    await drain(resources, queues=[DEFAULT])

    shown = (await node_show(resources.settings, job_id))[job_id]
    assert shown["state"] == "completed"
    assert shown["returnvalue"]["export_id"] == str(export_id)
    assert shown["returnvalue"]["already_done"] is False
    async with resources.db.transaction() as session:
        export = await accounts_repo.get_export(session, export_id)
    assert export is not None
    assert export.status == "done"


async def test_node_awaits_the_outcome_of_jobs_our_worker_runs_through_queue_events(
    job_resources: Resources,
) -> None:
    settings = job_resources.settings
    waiting = [
        await start_node(
            "wait.mjs",
            {"queue": DEFAULT, "name": "test.effect", "data": data, "opts": {"jobId": job_id}},
            settings,
        )
        for job_id, data in [
            ("awaited", {"key": "awaited"}),
            ("awaited-doomed", {"key": "d", "permanent": True}),
        ]
    ]
    try:
        assert [await next_line(p) for p in waiting] == [{"added": "awaited"}, {"added": "awaited-doomed"}]
        await drain(job_resources, queues=[DEFAULT])
        outcomes = [await next_line(p) for p in waiting]
    finally:
        for p in waiting:
            if p.returncode is None:
                p.kill()
            await p.wait()
    assert outcomes == [
        {"result": {"key": "awaited", "run": 1}},
        {"error": "test.effect: effect d can never succeed"},
    ]


async def test_a_job_our_worker_failed_shows_its_reason_and_every_stack_trace_to_node(
    job_resources: Resources,
) -> None:
    producer = job_resources.producer
    await producer.enqueue("test.effect", {"key": "hopeless", "fail_times": 9}, job_id="hopeless")
    await producer.enqueue("test.effect", {"key": "doomed", "permanent": True}, job_id="doomed")
    await drain(job_resources, queues=[DEFAULT], timeout_s=30)

    shown = await node_show(job_resources.settings, "hopeless", "doomed")
    hopeless = shown["hopeless"]
    assert hopeless["state"] == "failed"
    assert hopeless["attemptsMade"] == 3
    assert hopeless["failedReason"] == "planned failure 3 of 9 for hopeless"
    assert len(hopeless["stacktrace"]) == 3
    for n, trace in enumerate(hopeless["stacktrace"], start=1):
        assert trace.startswith("Traceback (most recent call last)")
        assert f"RuntimeError: planned failure {n} of 9 for hopeless" in trace
    doomed = shown["doomed"]
    assert doomed["state"] == "failed"
    assert doomed["attemptsMade"] == 1
    assert doomed["failedReason"] == "test.effect: effect doomed can never succeed"
    assert "PermanentFailure" in doomed["stacktrace"][0]


# --- our producer produces, a Node worker consumes ----------------------------------------------


async def test_jobs_from_our_producer_run_on_a_node_worker(job_resources: Resources) -> None:
    producer = job_resources.producer
    await producer.enqueue("test.effect", {"key": "ok"}, job_id="py-ok")
    await producer.enqueue("test.effect", {"key": "flaky", "fail_times": 1}, job_id="py-flaky")
    await producer.enqueue("test.effect", {"key": "doomed", "permanent": True}, job_id="py-doomed")

    result = await node("work.mjs", {"queue": DEFAULT, "expect": 3}, job_resources.settings)
    assert sorted(result["completed"]) == ["py-flaky", "py-ok"]
    assert result["failed"] == ["py-doomed"]

    ok = await python_view(job_resources, "py-ok")
    assert ok.state == "completed"
    assert ok.return_value == {"key": "ok", "run": 1, "worker": "node"}
    # Retried by the Node worker through its backoff strategy for our 'habitjobs' backoff type.
    flaky = await python_view(job_resources, "py-flaky")
    assert flaky.state == "completed"
    assert flaky.attempts_made == 2
    assert flaky.return_value == {"key": "flaky", "run": 2, "worker": "node"}
    assert flaky.processed_at is not None
    assert flaky.created_at is not None
    assert (flaky.processed_at - flaky.created_at).total_seconds() >= 1.0  # the policy's 1 s base delay
    # A Node failure reads in Python like one of ours: the reason and the JavaScript stack.
    doomed = await python_view(job_resources, "py-doomed")
    assert doomed.state == "failed"
    assert doomed.attempts_made == 1
    assert doomed.failed_reason == "effect doomed can never succeed"
    assert "UnrecoverableError" in doomed.stacktrace[0]
    assert "work.mjs" in doomed.stacktrace[0]


async def test_priorities_and_delays_from_our_producer_are_obeyed_by_a_node_worker(
    job_resources: Resources,
) -> None:
    producer = job_resources.producer
    # Priority too: a delayed job without one would go ahead of all prioritized jobs once due.
    await producer.enqueue("test.effect", {"key": "later"}, job_id="later", delay_ms=1_200, priority=100)
    await producer.enqueue("test.effect", {"key": "third"}, job_id="third", priority=30)
    await producer.enqueue("test.effect", {"key": "first"}, job_id="first", priority=1)
    await producer.enqueue("test.effect", {"key": "second"}, job_id="second", priority=2)

    result = await node("work.mjs", {"queue": DEFAULT, "expect": 4}, job_resources.settings)
    assert result["order"] == ["first", "second", "third", "later"]
    later = await python_view(job_resources, "later")
    assert later.processed_at is not None
    assert later.created_at is not None
    assert (later.processed_at - later.created_at).total_seconds() >= 1.2
