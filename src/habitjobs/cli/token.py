"""`habitjobs token --email …`: create the user if needed and print a bearer token (for dev and ops)."""

from __future__ import annotations

import typer

from habitjobs.accounts.auth import mint_token
from habitjobs.accounts.repository import get_or_create_user, update_user
from habitjobs.cli.common import run, settings_or_exit
from habitjobs.clock import SystemClock
from habitjobs.config import Settings
from habitjobs.db.engine import Database


async def issue_token(
    settings: Settings, email: str, *, admin: bool = False, ttl_s: int | None = None
) -> str:
    db = Database(settings.require_database_url(), pool_size=1)
    try:
        async with db.transaction() as session:
            user = await get_or_create_user(session, email)
            if admin and not user.is_admin:
                await update_user(session, user.id, {"is_admin": True})
        return mint_token(settings, user.id, now=SystemClock().now(), ttl_s=ttl_s)
    finally:
        await db.dispose()


def register(app: typer.Typer) -> None:
    @app.command()
    def token(
        email: str = typer.Option(..., help="the user's e-mail; the user is created if new"),
        admin: bool = typer.Option(False, help="make the user an administrator (admin API)"),
        ttl_s: int = typer.Option(None, help="lifetime in seconds (default: HABITJOBS_JWT_TTL_S)"),
    ) -> None:
        """Print a bearer token for EMAIL."""
        settings = settings_or_exit()
        if "@" not in email:
            raise typer.BadParameter("not an e-mail address", param_hint="--email")
        typer.echo(run(issue_token(settings, email, admin=admin, ttl_s=ttl_s)))
