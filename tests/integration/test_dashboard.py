"""The dashboard at /admin over HTTP (the browser tests drive the same pages in Chromium): sign-in, who is
refused, CSRF and cross-site posts, actions and their audit log, filtered job lists, live workers."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import redis.asyncio as aioredis

from habitjobs.api.app import create_app
from habitjobs.queue.names import ANALYTICS, DEFAULT
from habitjobs.queue.operations import JobOperations
from habitjobs.queue.runtime import WorkerRuntime
from habitjobs.resources import Resources
from tests.conftest import ApiUser
from tests.fakes.push import eventually
from tests.integration.test_admin_jobs import TEST_JOBS, failed_job
from tests.support.workers import process_env

MakeUser = Callable[..., Awaitable[ApiUser]]
ORIGIN = "http://api.test"


@pytest.fixture
async def web(job_resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(job_resources.settings, resources=job_resources)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as http:
        yield http


def login_link(resources: Resources, email: str, *, grant: bool = True) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "habitjobs", "admin", "login-link", "--email", email]
    return subprocess.run(
        [*args, "--grant"] if grant else args,
        env=process_env(resources.settings, **TEST_JOBS),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def sign_in(web: httpx.AsyncClient, resources: Resources, email: str = "ops@example.com") -> str:
    """Signs ``web`` in with a printed one-time code; returns the session's CSRF token."""
    printed = login_link(resources, email)
    assert printed.returncode == 0, printed.stderr
    match = re.search(r"/admin/login\?code=(\S+)", printed.stdout)
    assert match is not None, printed.stdout
    answer = await web.post("/admin/login", data={"code": match.group(1)}, headers={"Origin": ORIGIN})
    assert answer.status_code == 303, answer.text
    return csrf_of((await web.get("/admin")).text)


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None
    return match.group(1)


async def test_pages_send_a_strict_csp_and_no_inline_script(web: httpx.AsyncClient) -> None:
    page = await web.get("/admin/login")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) is None  # every script is a file
    htmx = await web.get("/admin/static/htmx-2.0.4.min.js")
    assert htmx.status_code == 200
    assert "htmx" in htmx.text


async def test_a_printed_code_signs_in_once_with_a_strict_cookie(
    web: httpx.AsyncClient, job_resources: Resources
) -> None:
    printed = login_link(job_resources, "first@example.com")
    match = re.search(r"/admin/login\?code=(\S+)", printed.stdout)
    assert match is not None
    code = match.group(1)
    answer = await web.post("/admin/login", data={"code": code}, headers={"Origin": ORIGIN})
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/admin" in cookie
    assert "secure" not in cookie  # only in the test and dev environments
    assert (await web.get("/admin")).status_code == 200
    web.cookies.clear()
    again = await web.post("/admin/login", data={"code": code}, headers={"Origin": ORIGIN})
    assert again.status_code == 401  # used once already


async def test_signed_out_and_non_admins_are_refused(
    web: httpx.AsyncClient,
    job_resources: Resources,
    make_user: MakeUser,
) -> None:
    signed_out = await web.get("/admin")
    assert signed_out.status_code == 303
    assert signed_out.headers["location"] == "/admin/login"
    assert (await web.get("/admin/fragments/overview", headers={"HX-Request": "true"})).status_code == 401
    posted = await web.post(
        "/admin/actions", data={"action": "pause", "queue": DEFAULT}, headers={"Origin": ORIGIN}
    )
    assert posted.status_code == 401
    assert not await job_resources.producer.queue(DEFAULT).isPaused()

    user: ApiUser = await make_user()
    refused = await web.post("/admin/login", data={"token": user.token}, headers={"Origin": ORIGIN})
    assert refused.status_code == 403
    assert "set-cookie" not in refused.headers
    not_granted = login_link(job_resources, user.email, grant=False)
    assert not_granted.returncode == 1
    assert "not an administrator" in not_granted.stderr

    admin: ApiUser = await make_user(admin=True)
    assert (
        await web.post("/admin/login", data={"token": admin.token}, headers={"Origin": ORIGIN})
    ).status_code == 303
    assert (await web.get("/admin")).status_code == 200


async def test_cross_site_posts_and_missing_csrf_tokens_are_refused(
    web: httpx.AsyncClient, job_resources: Resources
) -> None:
    csrf = await sign_in(web, job_resources)
    form = {"csrf": csrf, "action": "pause", "queue": DEFAULT, "back": "/admin"}
    evil = await web.post("/admin/actions", data=form, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    site = await web.post("/admin/actions", data=form, headers={"Sec-Fetch-Site": "cross-site"})
    assert site.status_code == 403
    no_token = await web.post("/admin/actions", data={**form, "csrf": ""}, headers={"Origin": ORIGIN})
    assert no_token.status_code == 403
    nothing = await web.post("/admin/actions", data=form)  # neither Origin nor Referer
    assert nothing.status_code == 403
    assert not await job_resources.producer.queue(DEFAULT).isPaused()

    done = await web.post("/admin/actions", data=form, headers={"Origin": ORIGIN})
    assert done.status_code == 303
    assert await job_resources.producer.queue(DEFAULT).isPaused()
    page = (await web.get("/admin")).text
    assert f"queue {DEFAULT} paused" in page  # the action's visible result
    audit = (await web.get("/admin/audit")).text
    assert "pause" in audit
    assert f"queue {DEFAULT} paused" in audit


async def test_actions_go_through_the_operations_and_the_audit_log(
    web: httpx.AsyncClient, job_resources: Resources
) -> None:
    csrf = await sign_in(web, job_resources)
    job_id = await failed_job(job_resources, "dash-one", "dash-one-1")
    await failed_job(job_resources, "dash-other", "dash-other-1", name="test.elsewhere", queue=ANALYTICS)
    detail = await web.get(f"/admin/job/{DEFAULT}/{job_id}")
    assert detail.status_code == 200
    assert "planned failure" in detail.text
    assert "Traceback" in detail.text  # every attempt's stack trace

    listed = await web.get(f"/admin/jobs/{DEFAULT}/failed", params={"text": "dash-one"})
    assert f'data-job="{job_id}"' in listed.text
    none = await web.get(f"/admin/jobs/{DEFAULT}/failed", params={"name": "test.fair"})
    assert 'data-job="' not in none.text
    later = await web.get(f"/admin/jobs/{DEFAULT}/failed", params={"since": "2999-01-01T00:00"})
    assert 'data-job="' not in later.text
    earlier = await web.get(f"/admin/jobs/{DEFAULT}/failed", params={"until": "2999-01-01T00:00"})
    assert f'data-job="{job_id}"' in earlier.text
    named = await web.get(f"/admin/jobs/{DEFAULT}/failed", params={"name": "test.effect"})
    assert "Retry all failed test.effect jobs" in named.text
    assert '<input type="hidden" name="name" value="test.effect">' in named.text
    bad = await web.get(f"/admin/jobs/{DEFAULT}/failed", params={"since": "yesterday"})
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "since"
    assert (await web.get("/admin/jobs/nope/failed")).status_code == 404
    assert (await web.get("/admin/activity")).status_code == 200
    one_user = await web.get("/admin/activity", params={"user": "00000000-0000-0000-0000-000000000001"})
    assert one_user.status_code == 200
    assert "Sync batches with rejected mutations (user 00000000-0000-0000-0000-000000000001)" in one_user.text
    assert (await web.get("/admin/activity", params={"user": "me"})).json()["error"]["field"] == "user"

    back = f"/admin/job/{DEFAULT}/{job_id}"
    retried = await web.post(
        "/admin/actions",
        data={"csrf": csrf, "action": "retry", "queue": DEFAULT, "job_id": job_id, "back": back},
        headers={"Origin": ORIGIN},
    )
    assert retried.status_code == 303
    assert retried.headers["location"] == back
    assert (await job_resources.producer.queue(DEFAULT).getJobState(job_id)) == "waiting"
    # Another site's address as the way back is not followed.
    again = await web.post(
        "/admin/actions",
        data={"csrf": csrf, "action": "retry", "queue": DEFAULT, "job_id": job_id, "back": "//evil.example/"},
        headers={"Origin": ORIGIN},
    )
    assert again.headers["location"] == "/admin"
    assert "Not done" in (await web.get("/admin")).text  # it is not failed any more: 409, shown
    audit = (await web.get("/admin/audit")).text
    assert f"{DEFAULT}/{job_id}" in audit
    assert "refused" in audit


async def test_workers_are_listed_under_the_name_node_bullmq_looks_for(
    web: httpx.AsyncClient,
    job_resources: Resources,
    make_user: MakeUser,
    redis_url: str,
) -> None:
    runtime = WorkerRuntime(job_resources, queues=[DEFAULT, ANALYTICS])
    await runtime.start()
    try:
        prefix = job_resources.settings.queue_prefix
        expected = f"{prefix}:{base64.b64encode(DEFAULT.encode()).decode()}:w:"
        raw = aioredis.from_url(redis_url, decode_responses=True)
        try:

            async def named() -> bool:
                clients = await raw.client_list()
                return any(str(c.get("name", "")).startswith(expected) for c in clients)

            await eventually(named)
        finally:
            await raw.aclose()
        admin: ApiUser = await make_user(admin=True)
        listed = (await web.get("/admin/workers", headers=admin.headers)).json()
        assert {w["queue"] for w in listed} == {DEFAULT, ANALYTICS}
        assert all(w["name"] == runtime.name for w in listed)
        found = await JobOperations(job_resources.producer).workers(DEFAULT)
        assert [w.name for w in found] == [runtime.name]
        cli = subprocess.run(
            [sys.executable, "-m", "habitjobs", "jobs", "workers", "--json"],
            env=process_env(job_resources.settings, **TEST_JOBS),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert cli.returncode == 0, cli.stderr
        assert {w["queue"] for w in json.loads(cli.stdout)} == {DEFAULT, ANALYTICS}
    finally:
        await runtime.stop(grace_s=5)
    assert await JobOperations(job_resources.producer).workers() == []


async def test_the_overview_counts_last_hours_failures_from_bullmq_metrics(
    web: httpx.AsyncClient, job_resources: Resources
) -> None:
    await sign_in(web, job_resources)
    await failed_job(job_resources, "dash-metric", "dash-metric-1")
    overview = await JobOperations(job_resources.producer).overview()
    [health] = [q for q in overview if q.summary.name == DEFAULT]
    assert health.last_hour.failed == 1
    assert health.summary.counts["failed"] == 1
    fragment = await web.get("/admin/fragments/overview", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert f'data-queue="{DEFAULT}"' in fragment.text
