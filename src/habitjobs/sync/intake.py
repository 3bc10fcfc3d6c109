"""Group commit for uploads.

Storing an upload durably costs a commit, and a commit costs a WAL flush: on one disk that caps a server
at a few hundred commits a second however fast the code is, and every phone syncing at 7 am queues behind
it. So uploads that arrive while a group is being stored wait, and are then stored together: one
transaction (their batches in one statement, their outbox rows in another), one flush, one round trip to
Redis for their jobs — then every one of them is answered. An upload arriving on an idle server is
stored at once: there is no timer, the group is whatever queued up meanwhile.

The uploader is checked in the same transaction: the route only verifies a token of this server, and the
group's insert skips uploads of users that are gone or being deleted (401 for those), so an upload costs
no sign-in transaction of its own.

Each upload is still answered only once its batch and its outbox row are committed and its job is
queued. Two groups may be in flight at once, so that one group's disk flush does not hold up the next.
A group that fails as a whole (one of its users was deleted meanwhile) is stored again upload by upload,
so one bad upload never fails the others — unless PostgreSQL did not answer: then each would wait its
own time limit in turn, so they are all answered with the failure at once (503, the client retries).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from habitjobs.db.engine import Database
from habitjobs.errors import HabitjobsError
from habitjobs.outage import is_store_outage
from habitjobs.queue.outbox import Outbox
from habitjobs.sync import service
from habitjobs.sync.service import Stored, Upload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Waiting:
    upload: Upload
    answer: asyncio.Future[Stored]


class Intake:
    """Stores uploads in groups (see the module). One per API process and event loop."""

    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        *,
        in_flight: int = 2,
        max_group: int = 200,
        max_group_bytes: int = 8_000_000,
    ) -> None:
        self._db = db
        self._outbox = outbox
        # Groups stored at the same time: while one waits for its commit's disk flush, the next one is
        # already on its way (one at a time leaves the flush's wait idle).
        self._in_flight = in_flight
        self._max_group = max_group
        self._max_group_bytes = max_group_bytes
        self._waiting: list[_Waiting] = []
        self._storing: set[asyncio.Task[None]] = set()

    async def store(self, upload: Upload) -> Stored:
        """Store ``upload`` with whatever else is waiting; returns the batch and whether it is new."""
        answer: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(upload, answer))
        if len(self._storing) < self._in_flight:
            task = asyncio.create_task(self._store_all(), name="sync-intake")
            self._storing.add(task)
            task.add_done_callback(self._storing.discard)
        return await answer

    async def idle(self) -> None:
        """Return once every upload handed in so far is stored (or failed): at shutdown, in tests."""
        while self._storing:
            await asyncio.gather(*self._storing, return_exceptions=True)

    async def _store_all(self) -> None:
        while self._waiting:
            group = self._next_group()
            try:
                outcomes = await self._store_group([w.upload for w in group])
            except Exception as exc:
                if len(group) == 1 or is_store_outage(exc):  # a store that does not answer fails them all
                    for waiting in group:
                        _answer(waiting, exc)
                    continue
                log.info("a group of %d uploads failed (%r); storing them one by one", len(group), exc)
                for waiting in group:
                    outcome: Stored | BaseException
                    try:
                        [outcome] = await self._store_group([waiting.upload])
                    except Exception as one:
                        outcome = one
                    _answer(waiting, outcome)
                continue
            for waiting, outcome in zip(group, outcomes, strict=True):
                _answer(waiting, outcome)

    def _next_group(self) -> list[_Waiting]:
        size = 0
        for count, waiting in enumerate(self._waiting):
            size += len(waiting.upload.payload_json)
            if count and (count >= self._max_group or size > self._max_group_bytes):
                group, self._waiting = self._waiting[:count], self._waiting[count:]
                return group
        group, self._waiting = self._waiting, []
        return group

    async def _store_group(self, uploads: list[Upload]) -> list[Stored | HabitjobsError]:
        async with self._db.transaction() as session:
            outcomes = await service.store_uploads(session, self._outbox, uploads)
        # Leaving the block committed the group and queued its jobs (the outbox's after-commit step).
        return outcomes


def _answer(waiting: _Waiting, outcome: Stored | BaseException) -> None:
    if waiting.answer.done():  # the request went away; its upload is stored all the same
        return
    if isinstance(outcome, BaseException):
        waiting.answer.set_exception(outcome)
    else:
        waiting.answer.set_result(outcome)
