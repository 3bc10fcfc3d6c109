"""All SQL of the push domain. Set-based: one statement per batch, never one per delivery."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Text, Uuid, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.accounts.models import User
from habitjobs.push.models import UNFINISHED, PushDelivery


@dataclass(frozen=True)
class Claimed:
    """A delivery this worker now holds (``status`` 'sending'), or one it just skipped ('skipped')."""

    id: uuid.UUID
    status: str
    skip_reason: str | None
    provider: str
    kind: str
    payload: dict[str, Any]
    collapse_id: str
    not_after: datetime
    user_id: uuid.UUID
    device_id: uuid.UUID
    token: str
    apns_env: str | None
    platform: str


@dataclass(frozen=True)
class OutcomeRow:
    delivery_id: uuid.UUID
    status: str
    message_id: str | None
    error: str | None
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class DeadToken:
    device_id: uuid.UUID
    token: str
    reason: str
    # APNs 410: the token is dead since then; a device registered later keeps working.
    invalid_since: datetime | None


async def user_locale(session: AsyncSession, user_id: uuid.UUID) -> str | None:
    locale: str | None = await session.scalar(select(User.locale).where(User.id == user_id))
    return locale


async def find_user_id(session: AsyncSession, email: str) -> uuid.UUID | None:
    user_id: uuid.UUID | None = await session.scalar(
        select(User.id).where(func.lower(User.email) == email.lower())
    )
    return user_id


# One delivery per occasion and enabled device of its user, in one statement. The id is derived from
# the dedupe key (``push.service.delivery_id`` computes the same in Python), and the key (occasion +
# device) makes a second insert of the same occasion a no-op.
_FAN_OUT = text(
    """
    INSERT INTO push_deliveries
        (id, dedupe_key, user_id, device_id, provider, kind, payload, collapse_id, not_after)
    SELECT md5(:id_salt || x.occasion || ':' || d.id)::uuid, x.occasion || ':' || d.id, x.user_id, d.id,
           d.provider, x.kind, x.payload, x.collapse_id, x.not_after
    FROM unnest(
        CAST(:occasions AS text[]), CAST(:user_ids AS uuid[]), CAST(:kinds AS text[]),
        CAST(:payloads AS jsonb[]), CAST(:collapse_ids AS text[]), CAST(:not_afters AS timestamptz[]))
        AS x(occasion, user_id, kind, payload, collapse_id, not_after)
    JOIN devices d ON d.user_id = x.user_id AND d.push_enabled
    ON CONFLICT (dedupe_key) DO NOTHING
    RETURNING id, dedupe_key
    """
)


async def insert_fan_out(
    session: AsyncSession, columns: dict[str, list[Any]], *, id_salt: str
) -> list[tuple[uuid.UUID, str]]:
    """Insert the deliveries of many occasions (column arrays: occasions, user_ids, kinds, payloads as
    JSON text, collapse_ids, not_afters); returns (id, dedupe_key) of the rows actually inserted."""
    if not columns.get("occasions"):
        return []
    rows = await session.execute(_FAN_OUT, {**columns, "id_salt": id_salt})
    return [(row.id, row.dedupe_key) for row in rows]


_CLAIM = text(
    """
    WITH candidates AS (
        SELECT id FROM push_deliveries
        WHERE id = ANY(:ids)
          AND (status = 'pending' OR (status = 'sending' AND leased_until < :now))
        ORDER BY id
        FOR UPDATE SKIP LOCKED
    ), decided AS (
        SELECT c.id, dv.push_token, dv.apns_env, dv.platform, dv.provider,
               CASE WHEN d.not_after < :now THEN 'past not_after'
                    WHEN NOT dv.push_enabled THEN 'device disabled' END AS skip_reason
        FROM candidates c
        JOIN push_deliveries d ON d.id = c.id
        JOIN devices dv ON dv.id = d.device_id
    )
    UPDATE push_deliveries d SET
        status = CASE WHEN x.skip_reason IS NULL THEN 'sending' ELSE 'skipped' END,
        leased_until = CASE WHEN x.skip_reason IS NULL THEN CAST(:lease_until AS timestamptz) END,
        attempts = d.attempts + CASE WHEN x.skip_reason IS NULL THEN 1 ELSE 0 END,
        last_error = COALESCE(x.skip_reason, d.last_error),
        finished_at = CASE WHEN x.skip_reason IS NULL THEN NULL ELSE CAST(:now AS timestamptz) END,
        next_attempt_at = NULL
    FROM decided x
    WHERE d.id = x.id
    RETURNING d.id, d.status, x.skip_reason, x.provider, d.kind, d.payload, d.collapse_id, d.not_after,
              d.user_id, d.device_id, x.push_token, x.apns_env, x.platform
    """
).bindparams(
    bindparam("ids", type_=ARRAY(Uuid())),
    bindparam("now", type_=DateTime(timezone=True)),
    bindparam("lease_until", type_=DateTime(timezone=True)),
)


async def claim(
    session: AsyncSession, ids: Sequence[uuid.UUID], *, now: datetime, lease_until: datetime
) -> list[Claimed]:
    """Lease the sendable deliveries among ``ids`` until ``lease_until``.

    Takes rows that are pending, or 'sending' under a lease that ran out (their worker died); rows another
    transaction is claiming right now are skipped (SKIP LOCKED). Rows past ``not_after`` or whose device was
    disabled are marked skipped in the same statement and returned with status 'skipped'.
    """
    result = await session.execute(_CLAIM, {"ids": list(ids), "now": now, "lease_until": lease_until})
    return [Claimed(*row) for row in result.all()]


async def leased_elsewhere(
    session: AsyncSession, ids: Sequence[uuid.UUID], claimed: Sequence[uuid.UUID], *, now: datetime
) -> datetime | None:
    """When the last of ``ids`` that are unfinished but not ours becomes claimable (None: there are none)."""
    conditions = [PushDelivery.id.in_(list(ids)), PushDelivery.status.in_(("pending", "sending"))]
    if claimed:
        conditions.append(PushDelivery.id.not_in(list(claimed)))
    # No row: NULL. A row never leased counts as claimable now.
    latest = func.max(func.coalesce(PushDelivery.leased_until, now))
    found: datetime | None = await session.scalar(select(latest).where(*conditions))
    return found


_OUTCOMES = text(
    """
    UPDATE push_deliveries d SET
        status = u.status,
        provider_message_id = COALESCE(u.message_id, d.provider_message_id),
        last_error = u.error,
        next_attempt_at = u.next_attempt_at,
        leased_until = NULL,
        sent_at = CASE WHEN u.status = 'sent' THEN CAST(:now AS timestamptz) ELSE d.sent_at END,
        finished_at = CASE WHEN u.status IN ('sent', 'token_invalid', 'failed')
                           THEN CAST(:now AS timestamptz) END
    FROM unnest(:ids, :statuses, :message_ids, :errors, :next_at)
         AS u(id, status, message_id, error, next_attempt_at)
    WHERE d.id = u.id
      AND (
        -- still ours: nobody re-claimed the row after our lease ran out
        (d.status = 'sending' AND d.leased_until = CAST(:lease_until AS timestamptz))
        -- a final outcome is a fact even when it arrives late; it never overwrites another final one
        OR (u.status IN ('sent', 'token_invalid', 'failed') AND d.status IN ('pending', 'sending'))
      )
    """
).bindparams(
    bindparam("ids", type_=ARRAY(Uuid())),
    bindparam("statuses", type_=ARRAY(Text())),
    bindparam("message_ids", type_=ARRAY(Text())),
    bindparam("errors", type_=ARRAY(Text())),
    bindparam("next_at", type_=ARRAY(DateTime(timezone=True))),
    bindparam("now", type_=DateTime(timezone=True)),
    bindparam("lease_until", type_=DateTime(timezone=True)),
)


async def write_outcomes(
    session: AsyncSession, rows: Sequence[OutcomeRow], *, now: datetime, lease_until: datetime
) -> int:
    if not rows:
        return 0
    result = await session.execute(
        _OUTCOMES,
        {
            "ids": [r.delivery_id for r in rows],
            "statuses": [r.status for r in rows],
            "message_ids": [r.message_id for r in rows],
            "errors": [r.error for r in rows],
            "next_at": [r.next_attempt_at for r in rows],
            "now": now,
            "lease_until": lease_until,
        },
    )
    return int(getattr(result, "rowcount", 0) or 0)


_DISABLE = text(
    """
    UPDATE devices dv SET push_enabled = false, invalidated_at = CAST(:now AS timestamptz),
                          invalid_reason = u.reason
    FROM unnest(:device_ids, :tokens, :reasons, :since) AS u(device_id, token, reason, since)
    WHERE dv.id = u.device_id AND dv.push_token = u.token AND dv.push_enabled
      AND (u.since IS NULL OR dv.registered_at <= u.since)
    """
).bindparams(
    bindparam("device_ids", type_=ARRAY(Uuid())),
    bindparam("tokens", type_=ARRAY(Text())),
    bindparam("reasons", type_=ARRAY(Text())),
    bindparam("since", type_=ARRAY(DateTime(timezone=True))),
    bindparam("now", type_=DateTime(timezone=True)),
)


async def disable_dead_tokens(session: AsyncSession, dead: Sequence[DeadToken], *, now: datetime) -> int:
    """Disable devices whose token the provider declared dead — unless the token changed meanwhile, or (APNs
    410) the device registered again after the provider's timestamp."""
    if not dead:
        return 0
    result = await session.execute(
        _DISABLE,
        {
            "device_ids": [d.device_id for d in dead],
            "tokens": [d.token for d in dead],
            "reasons": [d.reason for d in dead],
            "since": [d.invalid_since for d in dead],
            "now": now,
        },
    )
    return int(getattr(result, "rowcount", 0) or 0)


_APNS_ENV = text(
    """
    UPDATE devices dv SET apns_env = u.env
    FROM unnest(:device_ids, :tokens, :envs) AS u(device_id, token, env)
    WHERE dv.id = u.device_id AND dv.push_token = u.token AND dv.apns_env IS DISTINCT FROM u.env
    """
).bindparams(
    bindparam("device_ids", type_=ARRAY(Uuid())),
    bindparam("tokens", type_=ARRAY(Text())),
    bindparam("envs", type_=ARRAY(Text())),
)


async def correct_apns_envs(session: AsyncSession, fixes: Sequence[tuple[uuid.UUID, str, str]]) -> None:
    """Record the APNs environment that accepted a device's token: (device id, token, env)."""
    if fixes:
        await session.execute(
            _APNS_ENV,
            {
                "device_ids": [f[0] for f in fixes],
                "tokens": [f[1] for f in fixes],
                "envs": [f[2] for f in fixes],
            },
        )


_FAIL_FOR_JOB = text(
    """
    UPDATE push_deliveries SET status = 'failed', last_error = :error, leased_until = NULL,
                               next_attempt_at = NULL, finished_at = CAST(:now AS timestamptz)
    WHERE id = ANY(:ids) AND status IN ('pending', 'sending')
    """
).bindparams(bindparam("ids", type_=ARRAY(Uuid())), bindparam("now", type_=DateTime(timezone=True)))


async def fail_unfinished(
    session: AsyncSession, ids: Sequence[uuid.UUID], error: str, *, now: datetime
) -> int:
    """Mark the unfinished deliveries among ``ids`` failed with ``error``; returns how many."""
    result = await session.execute(_FAIL_FOR_JOB, {"ids": list(ids), "error": error, "now": now})
    return int(getattr(result, "rowcount", 0) or 0)


_REOPEN = text(
    """
    UPDATE push_deliveries SET status = 'pending', last_error = NULL, finished_at = NULL
    WHERE id = ANY(:ids) AND status = 'failed' AND starts_with(last_error, :marker)
    """
).bindparams(bindparam("ids", type_=ARRAY(Uuid())))


async def reopen_failed(session: AsyncSession, ids: Sequence[uuid.UUID], marker: str) -> int:
    """Put the failed deliveries among ``ids`` whose error starts with ``marker`` back to pending."""
    result = await session.execute(_REOPEN, {"ids": list(ids), "marker": marker})
    return int(getattr(result, "rowcount", 0) or 0)


_STUCK = """
    SELECT id, created_at FROM push_deliveries
    WHERE status IN ('pending', 'sending') AND created_at < :older_than
      AND (status = 'pending' OR leased_until < :now) {after}
    ORDER BY created_at, id LIMIT :limit
"""
_STUCK_AFTER = "AND (created_at, id) > (:after_at, CAST(:after_id AS uuid))"


async def unfinished(
    session: AsyncSession,
    *,
    older_than: datetime,
    now: datetime,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[tuple[uuid.UUID, datetime]]:
    """Deliveries created before ``older_than`` that nobody is sending now (pending, or leased by a worker
    whose lease ran out), oldest first after ``after``: ``(id, created_at)``."""
    params: dict[str, Any] = {"older_than": older_than, "now": now, "limit": limit}
    if after is not None:
        params.update(after_at=after[0], after_id=after[1])
    rows = await session.execute(text(_STUCK.format(after=_STUCK_AFTER if after else "")), params)
    return [(row.id, row.created_at) for row in rows]


async def get_deliveries(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[PushDelivery]:
    rows = await session.scalars(
        select(PushDelivery).where(PushDelivery.id.in_(list(ids))).order_by(PushDelivery.id)
    )
    return list(rows.all())


_DELETE_FINISHED = text(
    "DELETE FROM push_deliveries WHERE id = ANY(ARRAY("
    "  SELECT id FROM push_deliveries WHERE created_at < :cutoff AND status <> ALL(CAST(:open AS text[])) "
    "  LIMIT :limit FOR UPDATE SKIP LOCKED))"
)


async def delete_finished(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` finished deliveries created before ``cutoff`` (retention)."""
    params = {"cutoff": cutoff, "open": list(UNFINISHED), "limit": limit}
    result = await session.execute(_DELETE_FINISHED, params)
    return int(getattr(result, "rowcount", 0) or 0)
