"""Account deletion: the request (which locks the account at once), its cancellation during the grace
period, and the steps of the ``accounts.delete_user`` job that erases the user's rows.

- Requesting: in one transaction, the user's row is locked, a deletion row is written (``scheduled``,
  ``not_before`` = now + grace), the account is locked (its tokens are refused from the next request on)
  and its devices disabled (no push is fanned out to them or sent to them any more), and the job is
  staged in the outbox, delayed by the grace period. A second request returns the first.
- Cancelling: possible while the deletion is ``scheduled``; unlocks the account and re-enables the
  devices it disabled. The job, when it comes, finds the deletion cancelled and does nothing.
- The job: ``scheduled`` → ``running`` once ``not_before`` has passed, then chunk after chunk of the
  user's rows (each chunk commits and counts itself, so a killed worker's retry goes on where the last
  commit stopped), then the user's row itself and ``done`` in one last transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.accounts import erase_sql
from habitjobs.accounts import repository as repo
from habitjobs.accounts.models import AccountDeletion
from habitjobs.clock import Clock
from habitjobs.errors import Conflict, NotFound, Unauthorized
from habitjobs.queue.outbox import Outbox

DELETE_JOB = "accounts.delete_user"
FINAL = ("done", "cancelled")


def delete_job_id(deletion_id: uuid.UUID) -> str:
    return f"delete-user-{deletion_id}"


async def request_deletion(
    session: AsyncSession, outbox: Outbox, clock: Clock, user_id: uuid.UUID, *, grace_s: int
) -> AccountDeletion:
    """Lock the account and stage its deletion (see the module); the same live request if there is one."""
    if await repo.lock_user_row(session, user_id) is None:
        raise Unauthorized("the token's user no longer exists")
    live = await repo.live_deletion(session, user_id)
    if live is not None:
        return live
    now = clock.now()
    deletion_id = uuid.uuid4()
    job_id = delete_job_id(deletion_id)
    deletion = await repo.create_deletion(
        session, deletion_id, user_id, job_id, not_before=now + timedelta(seconds=grace_s)
    )
    await repo.set_locked(session, user_id, now)
    await repo.disable_devices_of_locked(session, user_id, now)
    await outbox.add(
        session,
        DELETE_JOB,
        {"deletion_id": deletion_id},
        job_id=job_id,
        user_id=user_id,
        delay_ms=grace_s * 1000,
    )
    return deletion


async def get_deletion(session: AsyncSession, user_id: uuid.UUID) -> AccountDeletion:
    deletion = await repo.latest_deletion(session, user_id)
    if deletion is None:
        raise NotFound("no deletion of this account was requested")
    return deletion


async def cancel_deletion(session: AsyncSession, clock: Clock, user_id: uuid.UUID) -> AccountDeletion:
    await repo.lock_user_row(session, user_id)
    deletion = await repo.live_deletion(session, user_id, for_update=True)
    if deletion is None:
        raise NotFound("no deletion of this account is pending")
    if deletion.status != "scheduled":
        raise Conflict("the deletion has started; it cannot be cancelled any more", status=deletion.status)
    await repo.update_deletion(session, deletion.id, status="cancelled", cancelled_at=clock.now())
    await repo.set_locked(session, user_id, None)
    await repo.enable_devices_of_unlocked(session, user_id)
    found = await repo.get_deletion(session, deletion.id, for_update=True)
    assert found is not None
    return found


# --- the job's steps ------------------------------------------------------------------------------


async def start(session: AsyncSession, deletion_id: uuid.UUID, now: datetime) -> AccountDeletion | None:
    """The deletion, moved to ``running`` if its grace period is over (unchanged otherwise)."""
    deletion = await repo.get_deletion(session, deletion_id, for_update=True)
    if deletion is None or deletion.status != "scheduled" or now < deletion.not_before:
        return deletion
    await repo.update_deletion(session, deletion_id, status="running", started_at=now)
    return await repo.get_deletion(session, deletion_id, for_update=True)


async def jobs_of(session: AsyncSession, user_id: uuid.UUID) -> list[tuple[str, str]]:
    return await repo.outbox_jobs_of(session, user_id)


async def plan(session: AsyncSession) -> list[erase_sql.Target]:
    return await erase_sql.read_plan(session)


async def erase_chunk(
    session: AsyncSession, deletion_id: uuid.UUID, target: erase_sql.Target, user_id: uuid.UUID, limit: int
) -> int:
    """One bounded chunk of the user's rows in one table, counted in the same transaction."""
    rows = await erase_sql.erase_chunk(session, target, user_id, limit)
    await repo.count_rows_deleted(session, deletion_id, rows)
    return rows


async def finish(
    session: AsyncSession,
    deletion_id: uuid.UUID,
    user_id: uuid.UUID,
    targets: list[erase_sql.Target],
    now: datetime,
) -> int:
    """The last transaction: rows that appeared meanwhile in tables the user's row does not cascade to,
    then the user's row (its cascades and SET NULLs), and ``done``. Returns the rows it erased."""
    deletion = await repo.get_deletion(session, deletion_id, for_update=True)
    if deletion is None or deletion.status != "running":
        return 0
    rows = 0
    for target in targets:
        if not target.cascades:
            rows += await erase_sql.erase_chunk(session, target, user_id, None)
    rows += await repo.delete_user_row(session, user_id)
    await repo.update_deletion(
        session, deletion_id, status="done", finished_at=now, rows_deleted=deletion.rows_deleted + rows
    )
    return rows
