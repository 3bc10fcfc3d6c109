"""Bull Board (its JSON API: @bull-board/api + @bull-board/express, pinned in ``tests/interop/node``) over a
real Python worker process: our queues are listed, the workers are seen (``hasWorkers``: the client
name Node BullMQ looks for), a failed job's Python traceback is shown, and its retry re-runs the job."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from habitjobs.queue.names import ANALYTICS, DEFAULT
from habitjobs.resources import Resources
from tests.fakes.push import eventually
from tests.interop.test_node_interop import NODE, start_node
from tests.support import testjobs
from tests.support.net import free_port
from tests.support.workers import WorkerProcess

NODE_DIR = Path(__file__).parent / "node"
TEST_JOBS = {"HABITJOBS_EXTRA_JOB_MODULES": "tests.support.testjobs"}

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not on PATH"),
    pytest.mark.timeout(120),
]


@pytest.fixture
async def worker(job_resources: Resources, tmp_path: Path) -> AsyncIterator[WorkerProcess]:
    process = WorkerProcess(job_resources.settings, tmp_path / "worker.log", env=TEST_JOBS)
    try:
        await process.wait_started()
        yield process
    finally:
        process.signal(signal.SIGTERM)
        await process.wait_exit()


@pytest.fixture
async def board(job_resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    manifest = NODE_DIR / "node_modules" / "@bull-board" / "api" / "package.json"
    if not manifest.exists():
        pytest.fail(f"Bull Board is missing: run `npm ci` in {NODE_DIR} (scripts/test does it)")
    port = free_port()
    proc = await start_node(
        "board.mjs", {"queues": [DEFAULT, ANALYTICS], "port": port}, job_resources.settings
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.decode().strip() == f"listening {port}", line
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/ui", timeout=10) as http:
            yield http
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


async def queues(board: httpx.AsyncClient, **query: str) -> dict[str, dict[str, Any]]:
    answer = await board.get("/api/queues", params=query)
    assert answer.status_code == 200, answer.text
    return {q["name"]: q for q in answer.json()["queues"]}


async def test_bull_board_lists_our_queues_with_their_workers(
    job_resources: Resources, worker: WorkerProcess, board: httpx.AsyncClient
) -> None:
    listed = await queues(board)
    assert set(listed) == {DEFAULT, ANALYTICS}
    assert listed[DEFAULT]["hasWorkers"] is True
    assert listed[ANALYTICS]["hasWorkers"] is True
    # Node's getWorkers(): our worker process's connections, named after it (host:pid).
    workers = (await board.get(f"/api/queues/{DEFAULT}/workers")).json()["workers"]
    assert workers
    assert {w["name"] for w in workers} == {f"{socket.gethostname()}:{worker.proc.pid}"}


async def test_a_failed_jobs_traceback_shows_and_bull_boards_retry_completes_it(
    job_resources: Resources, worker: WorkerProcess, board: httpx.AsyncClient
) -> None:
    producer = job_resources.producer
    prefix = job_resources.settings.queue_prefix
    # test.elsewhere has one attempt: it fails at its first run and would succeed at its second.
    await producer.enqueue("test.elsewhere", {"key": "board-one", "fail_times": 1}, job_id="board-one")
    analytics = producer.queue(ANALYTICS)

    async def failed() -> bool:
        return str(await analytics.getJobState("board-one")) == "failed"

    await eventually(failed, timeout_s=20)
    listed = await queues(board, activeQueue=ANALYTICS, status="failed", page="1", jobsPerPage="10")
    [job] = [j for j in listed[ANALYTICS]["jobs"] if j["id"] == "board-one"]
    assert job["failedReason"] == "planned failure 1 of 1 for board-one"
    assert "Traceback (most recent call last)" in job["stacktrace"][0]
    assert "RuntimeError: planned failure 1 of 1" in job["stacktrace"][0]
    assert job["data"]["key"] == "board-one"

    retried = await board.put(f"/api/queues/{ANALYTICS}/board-one/retry")
    assert retried.status_code == 204, retried.text

    async def completed() -> bool:
        return str(await analytics.getJobState("board-one")) == "completed"

    await eventually(completed, timeout_s=20)
    effects = await producer.redis.get(testjobs.effects_key(prefix, "board-one"))
    assert int(effects) == 1
    # Bull Board's retry keeps the attempts made (ours resets them): docs/interop.md, "Using Bull Board".
    done = await analytics.getJob("board-one")
    assert int(done.attemptsMade) == 2


async def test_bull_boards_retry_all_re_runs_every_failed_job(
    job_resources: Resources, worker: WorkerProcess, board: httpx.AsyncClient
) -> None:
    producer = job_resources.producer
    analytics = producer.queue(ANALYTICS)
    for n in range(3):
        await producer.enqueue(
            "test.elsewhere", {"key": f"board-all-{n}", "fail_times": 1}, job_id=f"all-{n}"
        )

    async def counted(state: str) -> int:
        return int((await analytics.getJobCounts(state))[state])

    async def three_failed() -> bool:
        return await counted("failed") == 3

    await eventually(three_failed, timeout_s=20)
    answer = await board.put(f"/api/queues/{ANALYTICS}/retry/failed")
    assert answer.status_code == 200, answer.text

    async def three_completed() -> bool:
        return await counted("completed") == 3 and await counted("failed") == 0

    await eventually(three_completed, timeout_s=20)
