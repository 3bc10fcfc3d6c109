"""Store outages: recognising them, and logging them once per episode instead of once per failure.

A PostgreSQL or Redis that does not answer makes every request (or every enqueue) that needs it fail the
same way until it is back. A traceback for each of them buries the one fact worth knowing — the store is
away since when, and is back after how long — so callers report each failure to an :class:`OutageLog`,
which writes one warning when an episode starts and one line when it ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis.exceptions as redis_errors
from sqlalchemy import exc as sa_exc


def is_store_outage(exc: BaseException) -> bool:
    """PostgreSQL or Redis unreachable or not answering in time: the same call may succeed later."""
    if isinstance(
        exc,
        OSError  # includes TimeoutError: a statement or connection past its client-side limit
        | redis_errors.ConnectionError
        | redis_errors.TimeoutError
        | redis_errors.BusyLoadingError
        | sa_exc.TimeoutError,  # no free pooled connection in time
    ):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and (
        exc.connection_invalidated or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
    ):
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and is_store_outage(cause)


def describe(exc: BaseException) -> str:
    """A one-line description of an outage error (``TimeoutError()`` says little on its own)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    if not text and isinstance(exc, TimeoutError):
        text = "no answer within the time limit"
    return f"{name}: {text}" if text else name


class OutageLog:
    """Logs an outage episode as two lines: when its first failure happens, and when it is over.

    An episode is open from the first :meth:`failed` until :meth:`recovered` is called at least
    ``quiet_s`` after the latest failure: a success in the middle of an episode (a request that needed
    only the store that still answers) does not end it, and a failure after a quiet period starts a new
    one. The closing line is written by that first success (none if nothing succeeds any more).
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        quiet_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._clock = clock
        self._what = what
        self._quiet_s = quiet_s
        self._since: float | None = None
        self._last = 0.0
        self._count = 0

    def failed(self, exc: BaseException) -> None:
        now = self._clock()
        if self._since is not None and now - self._last >= self._quiet_s:
            self.recovered()
        if self._since is None:
            self._since, self._count = now, 0
            self._log.warning("%s: a store is unavailable (%s)", self._what, describe(exc))
        self._count += 1
        self._last = now

    def recovered(self) -> None:
        if self._since is None:
            return
        now = self._clock()
        if now - self._last < self._quiet_s:
            return
        self._log.info(
            "%s: no store failure for %.0f s; the outage lasted %.1f s (%d failure(s))",
            self._what,
            now - self._last,
            self._last - self._since,
            self._count,
        )
        self._since = None
