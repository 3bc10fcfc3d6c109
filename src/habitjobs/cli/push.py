"""`habitjobs push send-test --user EMAIL`: a test notification to every enabled device of a user."""

from __future__ import annotations

import typer
from rich.table import Table

from habitjobs.cli.common import console, fail, run, settings_or_exit
from habitjobs.errors import HabitjobsError
from habitjobs.push.models import SENT, UNFINISHED, PushDelivery
from habitjobs.push.testsend import JOB_OVER, Platform, send_test

app = typer.Typer(no_args_is_help=True, help="Push notifications.")


def _table(rows: list[PushDelivery]) -> Table:
    table = Table("delivery", "via", "status", "detail")
    for row in rows:
        table.add_row(str(row.id), row.provider, row.status, row.last_error or row.provider_message_id or "")
    return table


@app.command("send-test")
def send_test_command(
    user: str = typer.Option(..., "--user", help="the user's e-mail"),
    fake_device: Platform = typer.Option(
        None, help="first register a made-up ios/android device (dev and test only; creates the user if new)"
    ),
    wait_s: float = typer.Option(15.0, help="how long to wait for the outcomes (0: do not wait)"),
) -> None:
    """Send a test notification to every device of USER (a worker must be running to deliver it)."""
    settings = settings_or_exit()
    if "@" not in user:
        raise typer.BadParameter("not an e-mail address", param_hint="--user")
    if fake_device is not None and settings.env == "prod":
        fail("--fake-device is for dev and test environments only")
    try:
        rows, job_ids, jobs = run(send_test(settings, user, fake_device=fake_device, wait_s=wait_s))
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
        waiting = [j.state for j in jobs if j.state not in JOB_OVER] or ["not picked up"]
        hint = (
            " (is a worker running for the push queue?)"
            if {"waiting", "not picked up"} & set(waiting)
            else ""
        )
        fail(f"{sent} of {len(rows)} test deliveries sent; job {', '.join(waiting)}{hint}", code=1)
    fail(f"{sent} of {len(rows)} test deliveries sent", code=1)


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="push")
