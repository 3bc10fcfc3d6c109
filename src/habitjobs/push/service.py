"""Use-cases of the push domain. Never commits: the caller's transaction does.

Other domains (reminders, streak alerts) create notifications with two calls inside their own transaction::

    ids = await push_service.create_deliveries(
        session, user_id, Notification.habit_reminder(habit.id, habit.name),
        dedupe_key=f"reminder:{reminder.id}:{local_date}", not_after=fire_at + timedelta(minutes=30),
    )
    await push_service.stage_send(session, resources.outbox, ids)

and the ``push.send_batch`` jobs run after their transaction commits.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.errors import InvalidInput, NotFound
from habitjobs.push import repository as repo
from habitjobs.push.repository import Claimed
from habitjobs.push.result import Provider, PushMessage
from habitjobs.push.schemas import Notification
from habitjobs.push.templates import render
from habitjobs.queue.outbox import Outbox, StagedJob, staged_with
from habitjobs.queue.registry import Awaited, AwaitedPage, AwaitedScan

SEND_JOB = "push.send_batch"
MAX_BATCH = 500
# A delivery's id is a function of its dedupe key, so a retried transaction (or a second scheduler racing
# the first) computes the same ids. The SQL fan-out derives it the same way: md5 of salt + key.
_ID_SALT = "habitjobs-delivery:"
TEST_WINDOW = timedelta(minutes=10)
# A delivery's last_error when its send job failed for good: a later run of that job sends it after all.
JOB_FAILED = "job_failed: "


def delivery_id(dedupe_key: str) -> uuid.UUID:
    return uuid.UUID(hashlib.md5((_ID_SALT + dedupe_key).encode(), usedforsecurity=False).hexdigest())


def collapse_id(occasion: str) -> str:
    """The collapse id / Android tag of an occasion: the same on every device and attempt (≤ 64 bytes)."""
    return "hj-" + hashlib.sha256(occasion.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Occasion:
    """One notification for one user, to be sent to each of their enabled devices.

    ``key`` names it, e.g. ``reminder:<reminder_id>:<local_date>``; the device id is appended per delivery.
    """

    key: str
    user_id: uuid.UUID
    notification: Notification
    locale: str | None
    not_after: datetime


def payload_of(notification: Notification, locale: str | None) -> dict[str, Any]:
    """What a delivery stores and the senders read: ``{"title", "body", "data": {str: str}}``."""
    text = render(notification.kind, notification.params, locale)
    return {
        "title": text.title,
        "body": text.body,
        "data": {"kind": notification.kind.value, **notification.data},
    }


async def create_fan_out(session: AsyncSession, occasions: Sequence[Occasion]) -> list[tuple[uuid.UUID, str]]:
    """Create the deliveries of many occasions with one statement, in the caller's transaction; returns
    ``(delivery id, occasion key)`` for each delivery created. An occasion created before creates nothing.
    Stage the ids with :func:`stage_send` in the same transaction."""
    columns: dict[str, list[Any]] = {
        "occasions": [],
        "user_ids": [],
        "kinds": [],
        "payloads": [],
        "collapse_ids": [],
        "not_afters": [],
    }
    for occasion in occasions:
        if occasion.not_after.tzinfo is None:
            raise InvalidInput("not_after must be timezone-aware", field="not_after")
        columns["occasions"].append(occasion.key)
        columns["user_ids"].append(occasion.user_id)
        columns["kinds"].append(occasion.notification.kind.value)
        columns["payloads"].append(json.dumps(payload_of(occasion.notification, occasion.locale)))
        columns["collapse_ids"].append(collapse_id(occasion.key))
        columns["not_afters"].append(occasion.not_after)
    created = await repo.insert_fan_out(session, columns, id_salt=_ID_SALT)
    return [(ident, key.rsplit(":", 1)[0]) for ident, key in created]


async def create_deliveries(
    session: AsyncSession,
    user_id: uuid.UUID,
    notification: Notification,
    *,
    dedupe_key: str,
    not_after: datetime,
) -> list[uuid.UUID]:
    """Create one delivery of ``notification`` for each of the user's enabled devices, in the caller's
    transaction; return the ids of the deliveries this call created.

    - ``dedupe_key`` names the occasion, e.g. ``reminder:<reminder_id>:<local_date>``; the device id is
      appended per row. Calling again with the same key creates nothing and returns ``[]`` (the first call's
      deliveries were staged then), so a retried scheduler tick never notifies twice.
    - ``not_after`` (aware datetime): past it the notification is skipped, never sent late.
    - The text is rendered now, in the user's locale, and stored with the row.
    Stage the returned ids with :func:`stage_send` in the same transaction.
    """
    locale = await repo.user_locale(session, user_id)
    occasion = Occasion(dedupe_key, user_id, notification, locale, not_after)
    return [ident for ident, _ in await create_fan_out(session, [occasion])]


def send_job_id(delivery_ids: list[uuid.UUID]) -> str:
    """Deterministic: staging the same deliveries twice yields one job."""
    digest = hashlib.sha256(",".join(str(i) for i in delivery_ids).encode()).hexdigest()[:32]
    return f"push-{digest}"


def send_jobs(
    delivery_ids: Sequence[uuid.UUID], *, delay_ms: int = 0, user_id: uuid.UUID | None = None
) -> list[StagedJob]:
    """``push.send_batch`` jobs for these deliveries, ≤ ``MAX_BATCH`` each, with deterministic ids."""
    jobs = []
    for start in range(0, len(delivery_ids), MAX_BATCH):
        chunk = list(delivery_ids[start : start + MAX_BATCH])
        payload = {"delivery_ids": [str(i) for i in chunk]}
        jobs.append(StagedJob(SEND_JOB, payload, send_job_id(chunk), user_id=user_id, delay_ms=delay_ms))
    return jobs


async def stage_send(
    session: AsyncSession, outbox: Outbox, delivery_ids: list[uuid.UUID], *, user_id: uuid.UUID | None = None
) -> list[str]:
    """Stage ``push.send_batch`` jobs (≤ 500 deliveries each) in the caller's transaction; returns job ids.

    ``user_id`` makes the jobs visible to that user through ``GET /v1/jobs/{id}`` (leave it None for
    fan-outs that mix users).
    """
    return await outbox.add_many(session, send_jobs(delivery_ids, user_id=user_id))


async def send_test(
    session: AsyncSession, outbox: Outbox, email: str, *, now: datetime
) -> tuple[list[uuid.UUID], list[str]]:
    """A test notification to every enabled device of the user with ``email``: (delivery ids, job ids)."""
    user_id = await repo.find_user_id(session, email)
    if user_id is None:
        raise NotFound(f"no user with e-mail {email}")
    ids = await create_deliveries(
        session, user_id, Notification.test(), dedupe_key=f"test:{uuid.uuid4()}", not_after=now + TEST_WINDOW
    )
    if not ids:
        raise InvalidInput(f"{email} has no device with push enabled", field="user")
    return ids, await stage_send(session, outbox, ids, user_id=user_id)


async def fail_for_job(
    session: AsyncSession, delivery_ids: Sequence[uuid.UUID], reason: str, *, now: datetime
) -> int:
    """The send job of these deliveries failed for good: the unfinished ones are ``failed``."""
    return await repo.fail_unfinished(session, delivery_ids, f"{JOB_FAILED}{reason}"[:1000], now=now)


async def reopen_for_job(session: AsyncSession, delivery_ids: Sequence[uuid.UUID]) -> int:
    """The send job runs again after failing for good (an operator retried it): the deliveries its failure
    closed are pending again (those past ``not_after`` are then skipped, never sent late)."""
    return await repo.reopen_failed(session, delivery_ids, JOB_FAILED)


async def awaiting_sends(session: AsyncSession, scan: AwaitedScan, *, now: datetime) -> AwaitedPage:
    """The send jobs that unfinished deliveries wait on (for the reconciliation): each delivery's job is
    the one staged in the same transaction (:func:`habitjobs.queue.outbox.staged_with`); a delivery whose
    outbox row is gone (deleted by retention, `outbox_keep_s`) gets a new job of its own."""
    stuck = await repo.unfinished(
        session, older_than=scan.older_than, now=now, after=scan.after, limit=scan.limit
    )
    if not stuck:
        return AwaitedPage([], None)
    job_of: dict[str, tuple[str, dict[str, Any]]] = {}
    for job_id, data in await staged_with(session, SEND_JOB, sorted({created for _, created in stuck})):
        for delivery in data.get("delivery_ids") or []:
            job_of[str(delivery)] = (job_id, data)
    jobs: dict[str, Awaited] = {}
    orphans: list[uuid.UUID] = []
    for delivery, created in stuck:
        position = (created, str(delivery))
        found = job_of.get(str(delivery))
        if found is None:
            orphans.append(delivery)
        else:
            jobs[found[0]] = Awaited(found[0], found[1], position)
    last = (stuck[-1][1], str(stuck[-1][0]))
    for job in send_jobs(orphans):
        payload = job.payload if isinstance(job.payload, dict) else job.payload.model_dump(mode="json")
        jobs[job.job_id] = Awaited(job.job_id, payload, last)
    return AwaitedPage(list(jobs.values()), last if len(stuck) >= scan.limit else None)


def message_for(row: Claimed) -> PushMessage:
    """The message a claimed delivery becomes (its collapse id is the stored one, whatever the attempt)."""
    payload = row.payload
    return PushMessage(
        provider=Provider(row.provider),
        token=row.token,
        title=str(payload.get("title", "")),
        body=str(payload.get("body", "")),
        data={str(k): str(v) for k, v in (payload.get("data") or {}).items()},
        collapse_id=row.collapse_id,
        expires_at=row.not_after,
        platform=row.platform,
        apns_env=row.apns_env,
    )


async def delete_finished_deliveries(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Retention: finished deliveries created before ``cutoff`` go, ``limit`` at a time. The cutoff is at
    least two days back (``push_delivery_keep_s``), past every tick that could create the same dedupe key."""
    return await repo.delete_finished(session, cutoff, limit)
