"""`habitjobs push send-test --user EMAIL`: a test notification to every enabled device of a user."""

from __future__ import annotations

import typer
from rich.table import Table

from habitjobs.cli.common import console, fail, run, settings_or_exit
from habitjobs.errors import HabitjobsError
from habitjobs.push.models import UNFINISHED, PushDelivery
from habitjobs.push.testsend import Platform, send_test

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
        rows, job_ids = run(send_test(settings, user, fake_device=fake_device, wait_s=wait_s))
    except HabitjobsError as exc:
        fail(exc.message)
    console.print(f"staged {len(rows)} test deliveries in job(s) {', '.join(job_ids)}")
    console.print(_table(rows))
    if any(r.status in UNFINISHED for r in rows) and wait_s > 0:
        console.print("[yellow]still pending: is a worker running for the push queue?[/]")


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="push")
