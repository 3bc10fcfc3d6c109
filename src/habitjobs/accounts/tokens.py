"""Issue a bearer token for an e-mail address, creating the user if new: for `habitjobs token` and the dev
stack's dev user, outside any API request (it opens and closes its own database connection)."""

from __future__ import annotations

from habitjobs.accounts.auth import mint_token
from habitjobs.accounts.repository import get_or_create_user, update_user
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
