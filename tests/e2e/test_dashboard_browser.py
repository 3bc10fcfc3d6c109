"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright) against a real API
process, a real worker process, Redis and PostgreSQL. The screenshots it takes are docs/screenshots/.

Without /usr/bin/chromium these tests (only these) are skipped: `apt-get install -y chromium`."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Browser, Dialog, Page, async_playwright, expect

from habitjobs.config import Settings
from habitjobs.queue.names import ANALYTICS, DEFAULT
from habitjobs.resources import Resources
from tests.fakes.push import eventually
from tests.support.net import free_port, wait_http_ok
from tests.support.users import ApiUser
from tests.support.workers import ApiProcess, WorkerProcess, process_env

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
MakeUser = Callable[..., Awaitable[ApiUser]]
TEST_JOBS = {"HABITJOBS_EXTRA_JOB_MODULES": "tests.support.testjobs"}
VIOLATIONS: list[str] = []

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="the dashboard's browser tests need Debian's chromium: apt-get install -y chromium",
    ),
]


@dataclass(frozen=True)
class Stack:
    base_url: str
    resources: Resources
    settings: Settings


@pytest.fixture
async def stack(job_resources: Resources, tmp_path: Path) -> AsyncIterator[Stack]:
    settings = job_resources.settings
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    api = ApiProcess(
        settings, tmp_path / "api.log", port, env={"HABITJOBS_ADMIN_BASE_URL": base_url, **TEST_JOBS}
    )
    worker = WorkerProcess(settings, tmp_path / "worker.log", env=TEST_JOBS)
    try:
        await wait_http_ok(f"{base_url}/healthz")
        await worker.wait_started()
        yield Stack(base_url, job_resources, settings)
    finally:
        worker.signal(signal.SIGTERM)
        await worker.wait_exit()
        api.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


async def new_page(browser: Browser, *, width: int = 1280, height: int = 800) -> Page:
    context = await browser.new_context(
        viewport={"width": width, "height": height}, timezone_id="Asia/Tokyo", color_scheme="light"
    )
    page = await context.new_page()

    async def accept(dialog: Dialog) -> None:  # the actions' confirmation
        await dialog.accept()

    page.on("dialog", accept)
    # The pages must work under their own Content-Security-Policy: Chromium reports every violation.
    page.on(
        "console",
        lambda message: VIOLATIONS.append(message.text) if "Content Security" in message.text else None,
    )
    return page


def login_code(stack: Stack, email: str) -> str:
    printed = subprocess.run(
        [sys.executable, "-m", "habitjobs", "admin", "login-link", "--email", email, "--grant"],
        env=process_env(stack.settings, HABITJOBS_ADMIN_BASE_URL=stack.base_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    match = re.search(r"^(http\S+/admin/login\?code=\S+)$", printed.stdout, re.MULTILINE)
    assert match is not None, printed.stdout
    return match.group(1)


async def shoot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def signed_in_page(browser: Browser, stack: Stack) -> Page:
    page = await new_page(browser)
    await page.goto(login_code(stack, "ops@example.com"))  # the printed link fills in the code
    await shoot(page, "login")
    await page.get_by_role("button", name="Sign in with the code").click()
    await expect(page.get_by_role("heading", name="Queues")).to_be_visible()
    return page


async def enqueue_failing(stack: Stack, name: str, key: str, job_id: str, fail_times: int) -> None:
    await stack.resources.producer.enqueue(name, {"key": key, "fail_times": fail_times}, job_id=job_id)


async def test_an_operator_sees_a_failure_live_reads_its_trace_and_retries_it(
    browser: Browser, stack: Stack
) -> None:
    page = await signed_in_page(browser, stack)
    await expect(page.locator(f'tr[data-queue="{DEFAULT}"] [data-workers]')).not_to_have_text("0")
    await shoot(page, "overview")
    # Keyboard: the first Tab reaches the skip link, then the navigation.
    await page.keyboard.press("Tab")
    await expect(page.locator(":focus")).to_have_text("Skip to content")

    await page.goto(f"{stack.base_url}/admin/jobs/{ANALYTICS}/failed")
    await page.evaluate("window.stillTheSamePage = true")
    await enqueue_failing(stack, "test.elsewhere", "browser-one", "browser-one-1", fail_times=1)
    row = page.locator('tr[data-job="browser-one-1"]')
    await expect(row).to_be_visible(timeout=20_000)  # appeared through htmx polling
    assert await page.evaluate("window.stillTheSamePage === true")  # no reload
    await shoot(page, "jobs")

    await row.get_by_role("link", name="browser-one-1").click()
    trace = page.locator("pre.trace").last
    await expect(trace).to_contain_text("Traceback")
    await expect(trace).to_contain_text("planned failure 1 of 1 for browser-one")
    created = page.locator("dl.facts time").first
    assert (await created.get_attribute("title") or "").endswith("UTC")
    assert not (await created.inner_text()).endswith("UTC")  # shown in the viewer's zone
    await shoot(page, "job")

    await page.get_by_role("button", name="Retry").click()
    await expect(page.locator("#flash")).to_contain_text("job browser-one-1 retried")
    await page.evaluate("window.stillTheSamePage = true")
    await expect(page.locator("[data-state]")).to_have_text("completed", timeout=20_000)
    assert await page.evaluate("window.stillTheSamePage === true")

    await page.goto(f"{stack.base_url}/admin/audit")
    await expect(page.locator("table.audit")).to_contain_text(f"{ANALYTICS}/browser-one-1")
    await shoot(page, "audit")
    await page.goto(f"{stack.base_url}/admin/activity")
    await expect(page.get_by_role("heading", name="What the jobs did")).to_be_visible()
    await shoot(page, "activity")

    phone = await page.context.new_page()  # signed in too: same browser context
    await phone.set_viewport_size({"width": 390, "height": 844})
    await phone.goto(f"{stack.base_url}/admin")
    await expect(phone.get_by_role("heading", name="Queues")).to_be_visible()
    await shoot(phone, "overview-phone")
    await page.emulate_media(color_scheme="dark")  # prefers-color-scheme: dark
    await page.goto(f"{stack.base_url}/admin/job/{ANALYTICS}/browser-one-1")
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)"
    await shoot(page, "job-dark")
    assert VIOLATIONS == []


async def test_retry_all_failed_by_name_and_pause_resume(browser: Browser, stack: Stack) -> None:
    for n in range(2):
        await enqueue_failing(stack, "test.effect", f"by-name-{n}", f"by-name-{n}", fail_times=3)
    await enqueue_failing(stack, "test.exact", "other-name", "other-name", fail_times=3)
    queue = stack.resources.producer.queue(DEFAULT)

    async def three_failed() -> bool:
        return int((await queue.getJobCounts("failed"))["failed"]) == 3

    await eventually(three_failed, timeout_s=30)
    page = await signed_in_page(browser, stack)
    await page.locator(f"#name-{DEFAULT}").fill("test.effect")
    await page.locator(f'#act-{DEFAULT} ~ form button[data-action="retry-failed"]').click()
    await expect(page.locator("#flash")).to_contain_text("2 failed jobs named test.effect retried")

    async def retried() -> bool:
        states = [await queue.getJobState(j) for j in ("by-name-0", "by-name-1", "other-name")]
        return states == ["completed", "completed", "failed"]

    await eventually(retried, timeout_s=30)
    await expect(page.locator(f'tr[data-queue="{DEFAULT}"] [data-count="failed"]')).to_have_text("1")

    await page.get_by_role("button", name=f"Pause {DEFAULT}").click()
    await expect(page.locator("#flash")).to_contain_text(f"queue {DEFAULT} paused")
    await expect(page.locator(f'tr[data-queue="{DEFAULT}"] [data-paused]')).to_have_text("paused")
    assert await queue.isPaused()
    await page.get_by_role("button", name=f"Resume {DEFAULT}").click()
    await expect(page.locator("#flash")).to_contain_text(f"queue {DEFAULT} resumed")
    await expect(page.locator(f'tr[data-queue="{DEFAULT}"] [data-paused]')).to_have_text("running")
    assert not await queue.isPaused()


async def test_non_admins_signed_out_visitors_and_other_sites_are_refused(
    browser: Browser,
    stack: Stack,
    make_user: MakeUser,
) -> None:
    page = await new_page(browser)
    await page.goto(f"{stack.base_url}/admin/jobs/{DEFAULT}/failed")
    await expect(page).to_have_url(f"{stack.base_url}/admin/login")  # signed out: sent to sign in

    user: ApiUser = await make_user()
    await page.get_by_label("Or an administrator's bearer token").fill(user.token)
    await page.get_by_role("button", name="Sign in with the token").click()
    await expect(page.get_by_role("alert")).to_have_text("This account is not an administrator.")
    answer = await page.goto(f"{stack.base_url}/admin")
    assert answer is not None
    assert answer.url == f"{stack.base_url}/admin/login"

    # Signed in as an administrator, a page of another site posts a form to the dashboard.
    admin = await signed_in_page(browser, stack)
    evil = "http://evil.test/"
    form = (
        f'<form method="post" action="{stack.base_url}/admin/actions">'
        f'<input name="action" value="pause"><input name="queue" value="{DEFAULT}">'
        '<input name="csrf" value="guessed"><button type="submit">Win a prize</button></form>'
    )
    await admin.route(evil, lambda route: route.fulfill(body=form, content_type="text/html"))
    await admin.goto(evil)
    async with admin.expect_response(f"{stack.base_url}/admin/actions") as posted:
        await admin.get_by_role("button", name="Win a prize").click()
    assert (await posted.value).status in (401, 403)
    assert not await stack.resources.producer.queue(DEFAULT).isPaused()
