"""What the queue layer needs of a process's resources, and nothing of the application.

The worker runtime, the reconciliation and the queue's own jobs use these five clients; the application's
:class:`habitjobs.resources.Resources` has them (and more, which only the domains' handlers use). The
queue layer hands whatever it was given to the handlers and hooks unchanged
(:class:`habitjobs.queue.registry.HandlerContext` is generic over it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from habitjobs.clock import Clock
    from habitjobs.config import Settings
    from habitjobs.queue.outbox import Outbox
    from habitjobs.queue.producer import Producer
    from habitjobs.queue.registry import Registry


class QueueResources(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def producer(self) -> Producer: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def clock(self) -> Clock: ...
