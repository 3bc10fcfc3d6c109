"""`habitjobs db upgrade | downgrade | heads`."""

from __future__ import annotations

import typer

from habitjobs.cli.common import console, settings_or_exit
from habitjobs.db import migrate

app = typer.Typer(no_args_is_help=True, help="Database migrations (Alembic).")


@app.command()
def upgrade(
    revision: str = typer.Argument("head"),
    wait_s: float = typer.Option(
        0, "--wait-s", min=0, help="while PostgreSQL cannot be reached (starting up), retry for this long"
    ),
) -> None:
    """Migrate the database up to REVISION (default: the newest)."""
    settings = settings_or_exit()
    migrate.upgrade_when_reachable(settings.require_database_url(), revision, wait_s=wait_s)
    console.print(f"database at {revision}")


@app.command()
def downgrade(revision: str) -> None:
    """Migrate the database down to REVISION."""
    settings = settings_or_exit()
    migrate.downgrade(settings.require_database_url(), revision)
    console.print(f"database at {revision}")


@app.command()
def heads() -> None:
    """Print the newest revision the code knows."""
    console.print(" ".join(migrate.current_heads()))
