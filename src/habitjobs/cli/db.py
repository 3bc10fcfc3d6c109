"""`habitjobs db upgrade | downgrade | heads`."""

from __future__ import annotations

import typer

from habitjobs.cli.common import console, settings_or_exit
from habitjobs.db import migrate

app = typer.Typer(no_args_is_help=True, help="Database migrations (Alembic).")


@app.command()
def upgrade(revision: str = typer.Argument("head")) -> None:
    """Migrate the database up to REVISION (default: the newest)."""
    settings = settings_or_exit()
    migrate.upgrade(settings.require_database_url(), revision)
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
