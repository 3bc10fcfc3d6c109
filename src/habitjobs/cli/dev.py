"""`habitjobs dev [--reset]`: the whole system on this machine (what `scripts/dev` runs)."""

from __future__ import annotations

import os

import typer

from habitjobs.cli.common import console, fail, run, settings_or_exit


def register(app: typer.Typer) -> None:
    @app.command()
    def dev(
        reset: bool = typer.Option(
            False, "--reset", help="delete the embedded servers' data first (their data directory only)"
        ),
    ) -> None:
        """Run everything on this machine until Ctrl-C: stores, migrations, fake push providers, API, worker.

        A store whose URL (HABITJOBS_REDIS_URL, HABITJOBS_DATABASE_URL) is unset is an embedded server with its data in HABITJOBS_DEV_DATA_DIR (default .habitjobs), on 127.0.0.1 at HABITJOBS_DEV_REDIS_PORT (6399) and HABITJOBS_DEV_POSTGRES_PORT (5499).

        HABITJOBS_ENV defaults to dev here.
        """  # noqa: E501 (typer rewraps the help; a paragraph must be one line)
        from habitjobs.devstack.console import DevConsole
        from habitjobs.devstack.errors import DevstackError
        from habitjobs.devstack.supervisor import DevSupervisor

        settings = settings_or_exit(**({} if os.environ.get("HABITJOBS_ENV") else {"env": "dev"}))
        try:
            code = run(DevSupervisor(settings, DevConsole(console), reset=reset).run())
        except DevstackError as exc:
            fail(str(exc))
        raise typer.Exit(code)
