"""`habitjobs push send-test --user EMAIL`: a test notification to every enabled device of a user."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Literal, cast

import typer
from rich.table import Table

from habitjobs.accounts import service as accounts_service
from habitjobs.accounts.repository import get_or_create_user
from habitjobs.accounts.schemas import DevicePut
from habitjobs.cli.common import console, fail, run, settings_or_exit
from habitjobs.config import Settings
from habitjobs.errors import HabitjobsError
from habitjobs.push import repository as push_repo
from habitjobs.push import service as push_service
from habitjobs.push.models import SENT, UNFINISHED, PushDelivery
from habitjobs.queue.inspect import JobView, get_job
from habitjobs.queue.names import PUSH
from habitjobs.resources import Resources

app = typer.Typer(no_args_is_help=True, help="Push notifications.")

Platform = Literal["ios", "android"]


# A job in one of these states will not touch its deliveries again (until an operator retries it).
_JOB_OVER = ("completed", "failed")


async def send_test(
    settings: Settings, email: str, *, fake_device: Platform | None = None, wait_s: float = 0.0
) -> tuple[list[PushDelivery], list[str], list[JobView]]:
    """Stage a test push for ``email`` (registering a fake device first if asked); wait up to ``wait_s``
    for the outcomes — or until the job is over, whatever its deliveries say. Returns the deliveries and
    the jobs as last seen, and the job ids."""
    resources = Resources.open(settings, application_name="habitjobs-cli")
    try:
        async with resources.db.transaction() as session:
            if fake_device is not None:
                user = await get_or_create_user(session, email)
                await accounts_service.register_device(
                    session,
                    user.id,
                    uuid.uuid4(),
                    DevicePut(platform=fake_device, push_token=f"dev-{uuid.uuid4().hex}", app_version="dev"),
                    max_devices=settings.max_devices_per_user,
                )
            ids, job_ids = await push_service.send_test(
                session, resources.outbox, email, now=resources.clock.now()
            )
        deadline = time.monotonic() + wait_s
        while True:
            async with resources.db.transaction() as session:
                rows = await push_repo.get_deliveries(session, ids)
            jobs = [job for job_id in job_ids if (job := await get_job(resources.producer, PUSH, job_id))]
            finished = all(r.status not in UNFINISHED for r in rows)
            jobs_over = len(jobs) == len(job_ids) and all(job.state in _JOB_OVER for job in jobs)
            if time.monotonic() >= deadline or finished or jobs_over:
                return rows, job_ids, jobs
            await asyncio.sleep(0.2)
    finally:
        await resources.aclose()


def _table(rows: list[PushDelivery]) -> Table:
    table = Table("delivery", "via", "status", "detail")
    for row in rows:
        table.add_row(str(row.id), row.provider, row.status, row.last_error or row.provider_message_id or "")
    return table


@app.command("send-test")
def send_test_command(
    user: str = typer.Option(..., "--user", help="the user's e-mail"),
    fake_device: str = typer.Option(
        None, help="first register a made-up ios/android device (dev and test only; creates the user if new)"
    ),
    wait_s: float = typer.Option(15.0, help="how long to wait for the outcomes (0: do not wait)"),
) -> None:
    """Send a test notification to every device of USER (a worker must be running to deliver it)."""
    settings = settings_or_exit()
    if "@" not in user:
        raise typer.BadParameter("not an e-mail address", param_hint="--user")
    if fake_device is not None and fake_device not in ("ios", "android"):
        raise typer.BadParameter("ios or android", param_hint="--fake-device")
    if fake_device is not None and settings.env == "prod":
        fail("--fake-device is for dev and test environments only")
    try:
        rows, job_ids, jobs = run(
            send_test(settings, user, fake_device=cast(Platform | None, fake_device), wait_s=wait_s)
        )
    except HabitjobsError as exc:
        fail(exc.message)
    console.print(f"staged {len(rows)} test deliveries in job(s) {', '.join(job_ids)}")
    console.print(_table(rows))
    if wait_s <= 0:
        return  # staged only, as asked
    for job in jobs:
        detail = f": {job.failed_reason}" if job.failed_reason else ""
        console.print(f"job {job.id}: {job.state} (attempts {job.attempts_made}/{job.max_attempts}){detail}")
    sent = sum(1 for r in rows if r.status == SENT)
    if sent == len(rows):
        return
    if any(job.state == "failed" for job in jobs):
        fail(f"the send job failed: {sent} of {len(rows)} test deliveries sent", code=1)
    if any(r.status in UNFINISHED for r in rows):
        waiting = [j.state for j in jobs if j.state not in _JOB_OVER] or ["not picked up"]
        hint = (
            " (is a worker running for the push queue?)"
            if {"waiting", "not picked up"} & set(waiting)
            else ""
        )
        fail(f"{sent} of {len(rows)} test deliveries sent; job {', '.join(waiting)}{hint}", code=1)
    fail(f"{sent} of {len(rows)} test deliveries sent", code=1)


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="push")
