"""Operating on jobs through the admin API and the CLI: inspect, retry one, retry all, remove, promote."""

import asyncio
import json
import subprocess
import sys

import httpx
import pytest
from fastapi.routing import APIRoute

from habitjobs.admin.routes import router as admin_router
from habitjobs.queue.inspect import get_job
from habitjobs.queue.names import ANALYTICS, DEFAULT
from habitjobs.queue.runtime import WorkerRuntime
from habitjobs.resources import Resources
from tests.support.users import MakeUser
from tests.support.workers import drain, process_env

TEST_JOBS = {"HABITJOBS_EXTRA_JOB_MODULES": "tests.support.testjobs"}


async def failed_job(
    resources: Resources, key: str, job_id: str, name: str = "test.effect", queue: str = DEFAULT
) -> str:
    """A job that exhausts its attempts now but would succeed on its next run."""
    attempts = resources.registry.get(name).policy.attempts
    await resources.producer.enqueue(name, {"key": key, "fail_times": attempts}, job_id=job_id)
    await drain(resources, queues=[queue])
    view = await get_job(resources.producer, queue, job_id)
    assert view is not None
    assert view.state == "failed"
    return job_id


def cli(resources: Resources, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "habitjobs", "jobs", *args],
        env=process_env(resources.settings, COLUMNS="200", **TEST_JOBS),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_admin_api_needs_an_administrator(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    user = await make_user()
    assert (await client.get("/admin/queues")).status_code == 401
    forbidden = await client.get("/admin/queues", headers=user.headers)
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "forbidden"
    assert (
        await client.post(f"/admin/queues/{DEFAULT}/retry-failed", headers=user.headers)
    ).status_code == 403


ADMIN_ROUTES = sorted(
    (method, route.path)
    for route in admin_router.routes
    if isinstance(route, APIRoute)
    for method in route.methods or ()
)


def test_every_operator_route_is_among_those_checked_below() -> None:
    # The parametrized test below takes its routes from the router itself, so a new route is checked too.
    assert len(ADMIN_ROUTES) >= 10
    assert ("GET", "/admin/queues") in ADMIN_ROUTES
    assert ("POST", "/admin/queues/{queue}/pause") in ADMIN_ROUTES


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES, ids=[f"{m} {p}" for m, p in ADMIN_ROUTES])
async def test_every_admin_route_refuses_a_user_who_is_not_an_administrator(
    client: httpx.AsyncClient, job_resources: Resources, make_user: MakeUser, method: str, path: str
) -> None:
    job_id = await failed_job(job_resources, "guarded", "guarded-1")
    user = await make_user()
    url = path.format(queue=DEFAULT, job_id=job_id)
    answer = await client.request(method, url, headers=user.headers)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["code"] == "forbidden"
    # Nothing happened: the failed job is still there, failed, and the queue is not paused.
    view = await get_job(job_resources.producer, DEFAULT, job_id)
    assert view is not None
    assert view.state == "failed"
    assert not await job_resources.producer.queue(DEFAULT).isPaused()


async def test_inspect_and_retry_a_failed_job_through_the_api(
    client: httpx.AsyncClient,
    job_resources: Resources,
    make_user: MakeUser,
) -> None:
    admin = await make_user(admin=True)
    job_id = await failed_job(job_resources, "api-retry", "api-retry-1")

    queues = (await client.get("/admin/queues", headers=admin.headers)).json()
    default = next(q for q in queues if q["name"] == DEFAULT)
    assert default["counts"]["failed"] == 1

    page = (
        await client.get(f"/admin/queues/{DEFAULT}/jobs", params={"state": "failed"}, headers=admin.headers)
    ).json()
    assert page["total"] == 1
    assert [j["id"] for j in page["jobs"]] == [job_id]

    detail = (await client.get(f"/admin/queues/{DEFAULT}/jobs/{job_id}", headers=admin.headers)).json()
    assert detail["state"] == "failed"
    assert detail["data"] == {
        "key": "api-retry",
        "fail_times": 3,
        "sleep_ms": 0,
        "block_ms": 0,
        "permanent": False,
        "retry_after_s": None,
    }
    assert len(detail["stacktrace"]) == 3
    assert detail["attempts_made"] == 3

    retried = await client.post(f"/admin/queues/{DEFAULT}/jobs/{job_id}/retry", headers=admin.headers)
    assert retried.status_code == 200, retried.text
    assert retried.json()["state"] == "waiting"
    assert retried.json()["attempts_made"] == 0
    await drain(job_resources, queues=[DEFAULT])
    view = await get_job(job_resources.producer, DEFAULT, job_id)
    assert view is not None
    assert view.state == "completed"

    again = await client.post(f"/admin/queues/{DEFAULT}/jobs/{job_id}/retry", headers=admin.headers)
    assert again.status_code == 409  # only failed jobs can be retried
    assert (await client.get(f"/admin/queues/{DEFAULT}/jobs/nope", headers=admin.headers)).status_code == 404
    assert (await client.get("/admin/queues/nope/jobs", headers=admin.headers)).status_code == 404
    bad_state = await client.get(
        f"/admin/queues/{DEFAULT}/jobs", params={"state": "lost"}, headers=admin.headers
    )
    assert bad_state.status_code == 422
    assert bad_state.json()["error"]["field"] == "state"


async def test_retry_failed_retries_exactly_the_failed_jobs_of_that_queue(
    client: httpx.AsyncClient,
    job_resources: Resources,
    make_user: MakeUser,
) -> None:
    admin = await make_user(admin=True)
    for i in range(3):
        await job_resources.producer.enqueue(
            "test.effect", {"key": f"f{i}", "fail_times": 3}, job_id=f"f-{i}"
        )
    await job_resources.producer.enqueue("test.effect", {"key": "ok"}, job_id="ok-1")
    await job_resources.producer.enqueue(
        "test.elsewhere", {"key": "other", "fail_times": 1}, job_id="other-1"
    )
    await drain(job_resources, queues=[DEFAULT, ANALYTICS])

    answer = await client.post(f"/admin/queues/{DEFAULT}/retry-failed", headers=admin.headers)
    assert answer.json() == {"queue": DEFAULT, "retried": 3}
    counts = await job_resources.producer.queue(DEFAULT).getJobCounts("waiting", "failed", "completed")
    assert counts == {"waiting": 3, "failed": 0, "completed": 1}
    other = await get_job(job_resources.producer, ANALYTICS, "other-1")
    assert other is not None
    assert other.state == "failed"  # another queue's failed job is left alone

    await drain(job_resources, queues=[DEFAULT])
    counts = await job_resources.producer.queue(DEFAULT).getJobCounts("failed", "completed")
    assert counts == {"failed": 0, "completed": 4}


async def test_retry_failed_by_name(
    job_resources: Resources, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    admin = await make_user(admin=True)
    await job_resources.producer.enqueue("test.effect", {"key": "n1", "fail_times": 3}, job_id="n-1")
    await job_resources.producer.enqueue("test.exact", {"key": "n2", "fail_times": 3}, job_id="n-2")
    await drain(job_resources, queues=[DEFAULT])
    answer = await client.post(
        f"/admin/queues/{DEFAULT}/retry-failed", params={"name": "test.exact"}, headers=admin.headers
    )
    assert answer.json()["retried"] == 1
    assert (await get_job(job_resources.producer, DEFAULT, "n-1")).state == "failed"  # type: ignore[union-attr]
    assert (await get_job(job_resources.producer, DEFAULT, "n-2")).state == "waiting"  # type: ignore[union-attr]


async def test_promote_and_remove(
    job_resources: Resources, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    admin = await make_user(admin=True)
    await job_resources.producer.enqueue(
        "test.effect", {"key": "later"}, job_id="later-1", delay_ms=3_600_000
    )
    assert (await get_job(job_resources.producer, DEFAULT, "later-1")).state == "delayed"  # type: ignore[union-attr]
    promoted = await client.post(f"/admin/queues/{DEFAULT}/jobs/later-1/promote", headers=admin.headers)
    assert promoted.status_code == 200
    assert promoted.json()["state"] == "waiting"
    assert (
        await client.post(f"/admin/queues/{DEFAULT}/jobs/later-1/promote", headers=admin.headers)
    ).status_code == 409
    assert (
        await client.delete(f"/admin/queues/{DEFAULT}/jobs/later-1", headers=admin.headers)
    ).status_code == 204
    assert await get_job(job_resources.producer, DEFAULT, "later-1") is None
    assert (
        await client.delete(f"/admin/queues/{DEFAULT}/jobs/later-1", headers=admin.headers)
    ).status_code == 404


async def test_pause_and_resume(
    job_resources: Resources, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    admin = await make_user(admin=True)
    assert (await client.post(f"/admin/queues/{DEFAULT}/pause", headers=admin.headers)).status_code == 204
    await job_resources.producer.enqueue("test.effect", {"key": "paused"}, job_id="p-1")
    queues = (await client.get("/admin/queues", headers=admin.headers)).json()
    default = next(q for q in queues if q["name"] == DEFAULT)
    assert default["paused"] is True
    # A running worker does not take it while the queue is paused.
    runtime = WorkerRuntime(job_resources, queues=[DEFAULT])
    await runtime.start()
    try:

        async def looked_and_found_nothing() -> None:  # bullmq's worker marks itself drained then
            while not runtime.workers[DEFAULT].drained:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(looked_and_found_nothing(), 10)
        assert (await get_job(job_resources.producer, DEFAULT, "p-1")).state in ("waiting", "paused")  # type: ignore[union-attr]
    finally:
        await runtime.stop(grace_s=5)
    assert (await client.post(f"/admin/queues/{DEFAULT}/resume", headers=admin.headers)).status_code == 204
    await drain(job_resources, queues=[DEFAULT])
    assert (await get_job(job_resources.producer, DEFAULT, "p-1")).state == "completed"  # type: ignore[union-attr]


async def test_cli_shows_counts_lists_shows_and_retries(job_resources: Resources) -> None:
    job_id = await failed_job(job_resources, "cli-retry", "cli-retry-1")

    counts = cli(job_resources, "counts", "--json")
    assert counts.returncode == 0, counts.stderr
    default = next(q for q in json.loads(counts.stdout) if q["name"] == DEFAULT)
    assert default["counts"]["failed"] == 1

    listed = cli(job_resources, "list", DEFAULT, "--state", "failed")
    assert listed.returncode == 0, listed.stderr
    assert job_id in listed.stdout
    assert "planned failure 3 of 3" in listed.stdout

    shown = cli(job_resources, "show", DEFAULT, job_id)
    assert shown.returncode == 0, shown.stderr
    assert "stack trace 3 of 3" in shown.stdout
    assert "RuntimeError: planned failure 1 of 3 for cli-retry" in shown.stdout

    retried = cli(job_resources, "retry", DEFAULT, job_id, "--json")
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout)["state"] == "waiting"
    await drain(job_resources, queues=[DEFAULT])
    assert (await get_job(job_resources.producer, DEFAULT, job_id)).state == "completed"  # type: ignore[union-attr]

    missing = cli(job_resources, "show", DEFAULT, "no-such-job")
    assert missing.returncode == 1
    assert "no job 'no-such-job'" in missing.stderr


async def test_cli_retry_failed(job_resources: Resources) -> None:
    await failed_job(job_resources, "r1", "r-1")
    answer = cli(job_resources, "retry-failed", DEFAULT, "--json")
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout) == {"queue": DEFAULT, "retried": 1}


async def test_cli_tables_keep_ids_whole_when_piped_and_name_each_column_once(
    job_resources: Resources,
) -> None:
    long_id = "a-job-id-that-is-much-longer-than-a-narrow-terminal-" + "x" * 40
    await failed_job(job_resources, "piped", long_id)
    env = process_env(job_resources.settings, COLUMNS="40", **TEST_JOBS)  # a narrow terminal's width

    def piped(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "habitjobs", "jobs", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert long_id in piped("list", DEFAULT)
    header = next(line for line in piped("counts").splitlines() if "queue" in line and "waiting" in line)
    columns = [c.strip() for c in header.replace("┃", "|").replace("│", "|").split("|") if c.strip()]
    assert len(columns) == len(set(columns)), columns
    assert "queue paused" in columns
