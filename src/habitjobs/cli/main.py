"""Entry point: `habitjobs api | worker | dev | db | token | jobs | admin`."""

from __future__ import annotations

import typer

from habitjobs.cli import admin, db, dev, jobs, jobs_schema, processes, push, token

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="habitjobs: habit app backend and its workers."
)
app.add_typer(db.app, name="db")
app.add_typer(admin.app, name="admin")
app.add_typer(jobs.app, name="jobs")
jobs_schema.register(jobs.app)
processes.register(app)
token.register(app)
dev.register(app)
push.register(app)


def main() -> None:
    app()
