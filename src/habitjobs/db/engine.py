"""The async engine and the one place where transactions begin, commit and roll back."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

log = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None]]
_AFTER_COMMIT_KEY = "habitjobs.after_commit"


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the asyncpg driver for them."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+asyncpg://" + url[len(plain) :]
    return url


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run ``callback`` once the session's transaction has committed (never if it rolls back).

    Used by the outbox to enqueue jobs only for rows that are durably stored.
    """
    session.info.setdefault(_AFTER_COMMIT_KEY, []).append(callback)


class Database:
    """One engine per process (and one more for the analytics replica when configured)."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        statement_timeout_ms: int = 0,
        application_name: str = "habitjobs",
        connect_timeout_s: float = 10.0,
        checkout_timeout_s: float = 30.0,
        client_timeout_s: float = 0.0,
    ) -> None:
        """``statement_timeout_ms`` is the server's limit (PostgreSQL cancels the statement); the other
        three are the client's own, which also hold when the server or the network goes silent:
        opening a connection, waiting for a free one of the pool, and one statement (0: no limit) —
        a statement past it raises ``TimeoutError`` and its connection is not reused."""
        server_settings = {"application_name": application_name}
        if statement_timeout_ms:
            server_settings["statement_timeout"] = str(statement_timeout_ms)
        connect_args: dict[str, object] = {"server_settings": server_settings, "timeout": connect_timeout_s}
        if client_timeout_s:
            connect_args["command_timeout"] = client_timeout_s
        self.engine: AsyncEngine = create_async_engine(
            normalize_url(url),
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_timeout=checkout_timeout_s,
            connect_args=connect_args,
        )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed when the block ends, rolled back if it raises.

        Callbacks registered with :func:`after_commit` run after the commit succeeded; their errors are
        logged, not raised, because the data is already stored (the outbox relay covers a lost enqueue).
        """
        async with self._sessions() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
            callbacks: list[AfterCommit] = session.info.pop(_AFTER_COMMIT_KEY, [])
        for callback in callbacks:
            try:
                await callback()
            except Exception:
                log.exception("after-commit callback failed; the outbox relay will retry it")

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def schema_revisions(self) -> set[str]:
        """The migration revision(s) the database is at (empty before the first migration)."""
        async with self.engine.connect() as conn:
            exists = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
            if not exists:
                return set()
            return {
                str(v) for v in (await conn.scalars(text("SELECT version_num FROM alembic_version"))).all()
            }

    async def dispose(self) -> None:
        await self.engine.dispose()
