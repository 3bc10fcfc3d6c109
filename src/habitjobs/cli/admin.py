"""`habitjobs admin login-link --email …`: a one-time sign-in link for the dashboard at /admin."""

from __future__ import annotations

import redis.asyncio as aioredis
import typer

from habitjobs.accounts.repository import get_or_create_user, update_user
from habitjobs.cli.common import fail, run, settings_or_exit
from habitjobs.config import Settings
from habitjobs.dashboard.sessions import for_settings
from habitjobs.db.engine import Database

app = typer.Typer(no_args_is_help=True, help="The operators' dashboard (/admin).")


async def login_code(settings: Settings, email: str, *, grant: bool) -> str | None:
    """A one-time code for EMAIL's account, or None when it is not an administrator (and not granted)."""
    db = Database(settings.require_database_url(), pool_size=1)
    try:
        async with db.transaction() as session:
            user = await get_or_create_user(session, email)
            if grant and not user.is_admin:
                await update_user(session, user.id, {"is_admin": True})
            elif not user.is_admin:
                return None
    finally:
        await db.dispose()
    redis = aioredis.from_url(settings.require_redis_url(), decode_responses=True)
    try:
        return await for_settings(redis, settings).new_login_code(user.id)
    finally:
        await redis.aclose()


@app.command("login-link")
def login_link(
    email: str = typer.Option(..., help="the administrator's e-mail"),
    grant: bool = typer.Option(False, help="make the user an administrator first (created if new)"),
) -> None:
    """Print a sign-in link (and its code) for the dashboard: usable once, for HABITJOBS_ADMIN_LOGIN_TTL_S."""
    settings = settings_or_exit()
    if "@" not in email:
        raise typer.BadParameter("not an e-mail address", param_hint="--email")
    code = run(login_code(settings, email, grant=grant))
    if code is None:
        fail(f"{email} is not an administrator (pass --grant to make them one)", code=1)
    base = settings.admin_base_url.rstrip("/")
    typer.echo(f"{base}/admin/login?code={code}")
    typer.echo(f"code: {code}  (valid once, for {settings.admin_login_ttl_s} s)")
