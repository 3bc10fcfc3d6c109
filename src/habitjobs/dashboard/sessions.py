"""Dashboard sign-in: one-time login codes and browser sessions, both kept in Redis by their SHA-256
only (a copy of Redis gives nobody a usable code or cookie).

- a login code (`habitjobs admin login-link`) works once (GETDEL) and only until it expires;
- a session holds the user's id and its CSRF token; the user is read again on every request, so an
  account that lost its admin flag, or was locked or deleted, is refused at once.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from habitjobs.config import Settings

_LOGIN = "admin:login"
_SESSION = "admin:session"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    user_id: uuid.UUID
    csrf: str


class AdminSessions:
    def __init__(self, redis: Any, prefix: str, *, login_ttl_s: int, session_ttl_s: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._login_ttl_s = login_ttl_s
        self._session_ttl_s = session_ttl_s

    def _key(self, kind: str, secret: str) -> str:
        return f"{self._prefix}:{kind}:{_digest(secret)}"

    async def new_login_code(self, user_id: uuid.UUID) -> str:
        code = secrets.token_urlsafe(24)
        await self._redis.set(self._key(_LOGIN, code), str(user_id), ex=self._login_ttl_s)
        return code

    async def redeem_login_code(self, code: str) -> uuid.UUID | None:
        """The user the code was printed for, once; None for an unknown, used or expired code."""
        if not code or len(code) > 200:
            return None
        value = await self._redis.getdel(self._key(_LOGIN, code))
        if value is None:
            return None
        return uuid.UUID(value.decode() if isinstance(value, bytes) else str(value))

    async def open(self, user_id: uuid.UUID) -> tuple[str, Session]:
        """A new session: the cookie value (returned once, stored hashed) and the session."""
        cookie = secrets.token_urlsafe(32)
        session = Session(user_id, secrets.token_urlsafe(32))
        record = json.dumps({"user_id": str(user_id), "csrf": session.csrf})
        await self._redis.set(self._key(_SESSION, cookie), record, ex=self._session_ttl_s)
        return cookie, session

    async def find(self, cookie: str | None) -> Session | None:
        if not cookie or len(cookie) > 200:
            return None
        raw = await self._redis.get(self._key(_SESSION, cookie))
        if raw is None:
            return None
        record = json.loads(raw)
        return Session(uuid.UUID(record["user_id"]), str(record["csrf"]))

    async def close(self, cookie: str | None) -> None:
        if cookie:
            await self._redis.delete(self._key(_SESSION, cookie))

    async def flash(self, cookie: str, message: str) -> None:
        """A message for the session's next page (the result of an action)."""
        await self._redis.set(self._key("admin:flash", cookie), message[:1000], ex=300)

    async def take_flash(self, cookie: str) -> str | None:
        value = await self._redis.getdel(self._key("admin:flash", cookie))
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def close_all_of(self, user_id: uuid.UUID) -> int:
        """End every dashboard session of ``user_id`` (their account is being deleted); how many."""
        closed = 0
        async for key in self._redis.scan_iter(match=f"{self._prefix}:{_SESSION}:*", count=1000):
            raw = await self._redis.get(key)
            if raw is not None and json.loads(raw).get("user_id") == str(user_id):
                closed += int(await self._redis.delete(key))
        return closed


def for_settings(redis: Any, settings: Settings) -> AdminSessions:
    return AdminSessions(
        redis,
        settings.queue_prefix,
        login_ttl_s=settings.admin_login_ttl_s,
        session_ttl_s=settings.admin_session_ttl_s,
    )
