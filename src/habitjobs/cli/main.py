"""Entry point: `habitjobs api | worker | dev | db | token | jobs`."""

from __future__ import annotations

import typer

from habitjobs.cli import db, processes, token

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="habitjobs: habit app backend and its workers."
)
app.add_typer(db.app, name="db")
processes.register(app)
token.register(app)


def main() -> None:
    app()
