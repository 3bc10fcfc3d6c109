"""The composition root: everything a process opens once at start and closes at exit.

API requests reach it through ``app.state``; job handlers through ``JobContext.resources``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from habitjobs.clock import Clock, SystemClock
from habitjobs.config import Settings, StoreLimits
from habitjobs.db.engine import Database
from habitjobs.queue.outbox import Outbox
from habitjobs.queue.producer import Producer
from habitjobs.queue.registry import HandlerContext, Registry

if TYPE_CHECKING:
    from habitjobs.push.gateway import PushGateway


@dataclass
class Resources:
    settings: Settings
    registry: Registry
    db: Database
    # Heavy analytics reads go here: a read replica when configured, else the primary.
    analytics_db: Database
    producer: Producer
    outbox: Outbox
    clock: Clock
    _push: PushGateway | None = field(default=None, repr=False)

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        registry: Registry | None = None,
        clock: Clock | None = None,
        application_name: str = "habitjobs",
        limits: StoreLimits | None = None,
    ) -> Resources:
        """Create the clients (they connect lazily, on first use). ``limits``: the client-side time limits
        of the store calls (the API's are short; by default the workers')."""
        from habitjobs.catalog import build_registry

        registry = registry or build_registry(settings)
        limits = limits or settings.worker_limits()
        timeouts = {
            "connect_timeout_s": limits.db_connect_s,
            "checkout_timeout_s": limits.db_checkout_s,
            "client_timeout_s": limits.db_statement_s,
        }
        db = Database(
            settings.require_database_url(),
            pool_size=settings.db_pool_size,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            application_name=application_name,
            **timeouts,
        )
        analytics_db = (
            Database(
                settings.analytics_database_url,
                pool_size=max(2, settings.db_pool_size // 2),
                statement_timeout_ms=settings.db_statement_timeout_ms,
                application_name=f"{application_name}-analytics",
                **timeouts,
            )
            if settings.analytics_database_url
            else db
        )
        producer = Producer(settings, registry, command_timeout_s=limits.redis_command_s)
        return cls(
            settings=settings,
            registry=registry,
            db=db,
            analytics_db=analytics_db,
            producer=producer,
            outbox=Outbox(db, producer),
            clock=clock or SystemClock(),
        )

    def push(self) -> PushGateway:
        """The push senders of this process, created on first use (only workers send; they connect lazily)."""
        if self._push is None:
            from habitjobs.push.gateway import PushGateway

            self._push = PushGateway(self.settings)
        return self._push

    async def aclose(self) -> None:
        if self._push is not None:
            await self._push.aclose()
            self._push = None
        await self.outbox.settle()
        await self.producer.close()
        if self.analytics_db is not self.db:
            await self.analytics_db.dispose()
        await self.db.dispose()


# What this application's job handlers get: the queue layer's context, holding these Resources.
JobContext = HandlerContext[Resources]
