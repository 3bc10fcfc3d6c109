"""`habitjobs db upgrade | downgrade | heads | partitions`."""

from __future__ import annotations

import typer
from rich.table import Table

from habitjobs.cli.common import console, run, settings_or_exit
from habitjobs.clock import SystemClock
from habitjobs.config import Settings
from habitjobs.db import migrate
from habitjobs.db import partitions as partition_ddl
from habitjobs.db.engine import Database
from habitjobs.maintenance import jobs as maintenance

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


async def _partitions(settings: Settings, maintain: bool) -> tuple[dict[str, dict[str, int]], Table]:
    db = Database(settings.require_database_url(), pool_size=1, application_name="habitjobs-cli")
    try:
        done = await maintenance.maintain_partitions(db, settings, SystemClock().now()) if maintain else {}
        table = Table("table", "partition", "from (UTC)", "to (UTC)", "size")
        async with db.transaction() as session:
            for rule in maintenance.partition_rules(settings):
                for p in await partition_ddl.partitions(session, rule.table):
                    table.add_row(
                        rule.table.name,
                        p.name,
                        f"{p.start:%Y-%m-%d %H:%M}",
                        f"{p.end:%Y-%m-%d %H:%M}",
                        f"{p.size_bytes / 1024:.0f} KiB",
                    )
        return done, table
    finally:
        await db.engine.dispose()


@app.command()
def partitions(
    maintain: bool = typer.Option(
        False, "--maintain", help="first do what maintenance.partitions does: make the next, drop expired"
    ),
) -> None:
    """List the partitions of the time-partitioned tables (README "Storage")."""
    settings = settings_or_exit()
    done, table = run(_partitions(settings, maintain))
    for name, counts in done.items():
        console.print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    console.print(table)
