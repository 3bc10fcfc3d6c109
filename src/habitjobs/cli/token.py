"""`habitjobs token --email …`: create the user if needed and print a bearer token (for dev and ops)."""

from __future__ import annotations

import typer

from habitjobs.accounts.tokens import issue_token
from habitjobs.cli.common import run, settings_or_exit


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
