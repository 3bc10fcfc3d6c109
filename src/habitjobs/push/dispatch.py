"""Sending one batch of deliveries: lease, send in parallel, record each outcome as soon as it is known.

This module owns its transactions (unlike a service) because that is its contract: the lease is committed
before the first message goes out, and outcomes are committed while the rest of the batch is still in
flight, so a crash loses at most the outcomes of the last ``push_outcome_flush_ms`` and of the requests in
flight. Those deliveries stay 'sending' until their lease runs out and are then sent again — with the same
collapse id, so the phone replaces the notification instead of showing two — unless ``not_after`` passed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from habitjobs.clock import Clock
from habitjobs.db.engine import Database
from habitjobs.push import models
from habitjobs.push import repository as repo
from habitjobs.push.repository import Claimed, DeadToken, OutcomeRow
from habitjobs.push.result import Outcome, SendResult, retry
from habitjobs.push.service import message_for

if TYPE_CHECKING:
    from habitjobs.resources import Resources

from habitjobs.observability import domain as observe

log = logging.getLogger(__name__)

# The sending phase ends this long before the lease does, so that no outcome is written after another
# worker could have taken the row over.
LEASE_MARGIN = 0.2
# Outcomes written per statement at most.
MAX_FLUSH_ROWS = 250

_STATUS = {
    Outcome.SENT: models.SENT,
    Outcome.TOKEN_INVALID: models.TOKEN_INVALID,
    Outcome.BAD_REQUEST: models.FAILED,
    Outcome.RETRY: models.PENDING,
    Outcome.AUTH_CONFIG: models.PENDING,
}


@dataclass
class BatchReport:
    requested: int
    counts: Counter[str] = field(default_factory=Counter)
    # Deliveries this job must see again later (our RETRY outcomes, rows leased by another worker).
    retry_after_s: float | None = None
    # Of those, the ones a provider (or our own rate limit) asked to slow down: nothing failed.
    throttled: int = 0
    auth_errors: list[str] = field(default_factory=list)
    bad_requests: list[str] = field(default_factory=list)

    def note_retry(self, after_s: float) -> None:
        self.retry_after_s = max(self.retry_after_s or 0.0, after_s)

    @property
    def only_throttled(self) -> bool:
        """Every delivery to see again was a "slow down" (429 or the local rate), none a failure."""
        return (
            self.retry_after_s is not None
            and self.throttled == self.counts.get("retry", 0)
            and not self.counts.get("leased_elsewhere")
        )

    def as_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, **dict(sorted(self.counts.items()))}


class OutcomeWriter:
    """Collects outcomes and writes them in one statement per flush window (or per ``MAX_FLUSH_ROWS``)."""

    def __init__(self, db: Database, clock: Clock, *, lease_until: datetime, flush_ms: int) -> None:
        self._db = db
        self._clock = clock
        self._lease_until = lease_until
        self._flush_s = flush_ms / 1000
        self._buffer: list[tuple[Claimed, SendResult]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._error: BaseException | None = None

    def add(self, row: Claimed, result: SendResult) -> None:
        self._buffer.append((row, result))
        if len(self._buffer) >= MAX_FLUSH_ROWS or self._flush_s <= 0:
            self._start_flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._flush_s, self._start_flush)

    def _start_flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        task = asyncio.get_running_loop().create_task(self._write(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, batch: list[tuple[Claimed, SendResult]]) -> None:
        now = self._clock.now()
        outcomes: list[OutcomeRow] = []
        dead: list[DeadToken] = []
        envs: list[tuple[uuid.UUID, str, str]] = []
        for row, result in batch:
            observe.push_outcome(row.provider, result.outcome.value)
            next_at = None
            if result.outcome is Outcome.RETRY:
                next_at = now + timedelta(seconds=result.retry_after_s or 0)
            error = (
                None if result.outcome is Outcome.SENT else f"{result.outcome.value}: {result.reason}"[:500]
            )
            outcomes.append(OutcomeRow(row.id, _STATUS[result.outcome], result.message_id, error, next_at))
            if result.outcome is Outcome.TOKEN_INVALID:
                dead.append(DeadToken(row.device_id, row.token, result.reason[:200], result.invalid_since))
            if result.outcome is Outcome.SENT and result.apns_env and result.apns_env != row.apns_env:
                envs.append((row.device_id, row.token, result.apns_env))
        async with self._lock:
            try:
                async with self._db.transaction() as session:
                    await repo.write_outcomes(session, outcomes, now=now, lease_until=self._lease_until)
                    await repo.disable_dead_tokens(session, dead, now=now)
                    await repo.correct_apns_envs(session, envs)
            except Exception as exc:
                # These stay 'sending' until their lease ends, then go out again (same collapse id).
                log.exception("could not record %d push outcome(s)", len(batch))
                self._error = self._error or exc

    async def close(self) -> None:
        """Write what is left; raise if any write failed."""
        self._start_flush()
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
        if self._error is not None:
            raise self._error


async def send_batch(resources: Resources, delivery_ids: list[uuid.UUID]) -> BatchReport:
    """Send the sendable deliveries among ``delivery_ids`` once. Safe to run twice, or side by side."""
    settings = resources.settings
    clock = resources.clock
    report = BatchReport(requested=len(delivery_ids))
    now = clock.now()
    lease_until = now + timedelta(seconds=settings.push_lease_s)
    async with resources.db.transaction() as session:
        claimed = await repo.claim(session, delivery_ids, now=now, lease_until=lease_until)
        elsewhere = await repo.leased_elsewhere(session, delivery_ids, [c.id for c in claimed], now=now)
    if elsewhere is not None:
        # Leased by a worker that may still be sending (or died): look again when that lease ends.
        report.counts["leased_elsewhere"] += 1
        report.note_retry(max(1.0, (elsewhere - now).total_seconds() + 1.0))
    to_send = []
    for row in claimed:
        if row.status == models.SKIPPED:
            report.counts["skipped"] += 1
        else:
            to_send.append(row)
    if not to_send:
        return report
    order = {d: i for i, d in enumerate(delivery_ids)}
    to_send.sort(key=lambda r: order.get(r.id, 0))

    gateway = resources.push()
    writer = OutcomeWriter(
        resources.db, clock, lease_until=lease_until, flush_ms=settings.push_outcome_flush_ms
    )
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + settings.push_lease_s * (1 - LEASE_MARGIN)

    async def send_one(row: Claimed) -> None:
        try:
            async with asyncio.timeout_at(stop_at):
                result = await gateway.send(message_for(row))
        except TimeoutError:
            result = retry("the batch ran out of its lease", 1.0)
        except Exception as exc:  # a bug must not abandon the rest of the batch
            log.exception("push sender failed on delivery %s", row.id)
            result = retry(f"sender error: {exc!r}", 5.0)
        writer.add(row, result)
        report.counts[result.outcome.value] += 1
        if result.outcome is Outcome.RETRY:
            report.note_retry(result.retry_after_s or 1.0)
            if result.slow_down:
                report.throttled += 1
        elif result.outcome is Outcome.AUTH_CONFIG:
            if result.reason not in report.auth_errors:
                report.auth_errors.append(result.reason)
        elif result.outcome is Outcome.BAD_REQUEST and len(report.bad_requests) < 5:
            log.error("push delivery %s refused as malformed: %s", row.id, result.reason)
            report.bad_requests.append(f"{row.id}: {result.reason}")

    try:
        await asyncio.gather(*(send_one(row) for row in to_send))
    finally:
        await writer.close()
    return report
