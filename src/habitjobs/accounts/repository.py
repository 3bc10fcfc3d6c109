"""All SQL of the accounts domain."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Text, Uuid, any_, bindparam, delete, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.accounts.models import (
    DELETION_LIVE,
    LOCAL_ISSUER,
    AccountDeletion,
    DataExport,
    Device,
    User,
    UserIdentity,
)
from habitjobs.queue.models import OutboxRow


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_or_create_user(session: AsyncSession, email: str) -> User:
    """The user `habitjobs token` signs in with this e-mail (its ``local`` identity), created if new.

    Users who signed up through an identity provider are not found by their e-mail: an address is
    contact data, and only an identity signs a user in.
    """
    subject = email.lower()
    existing = await session.scalar(
        select(User)
        .join(UserIdentity)
        .where(UserIdentity.issuer == LOCAL_ISSUER, UserIdentity.subject == subject)
    )
    if existing is not None:
        return existing
    user_id = await create_user_with_identity(session, LOCAL_ISSUER, subject, email)
    if user_id is None:  # created by a concurrent call meanwhile
        return await get_or_create_user(session, email)
    user = await session.get(User, user_id)
    assert user is not None
    return user


async def update_user(session: AsyncSession, user_id: uuid.UUID, values: dict[str, Any]) -> User | None:
    if values:
        await session.execute(update(User).where(User.id == user_id).values(**values, updated_at=func.now()))
    user = await session.get(User, user_id, populate_existing=True)
    return user


_TOKEN_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


async def upsert_device(
    session: AsyncSession, user_id: uuid.UUID, device_id: uuid.UUID, values: dict[str, Any]
) -> Device | None:
    """Register (or re-register) one of the user's installations; None when ``device_id`` is another
    user's installation (the row is left exactly as it is: an id never moves between users).

    A push token belongs to the installation that registered it last: an installation that held it
    before (the same user's or another user's, say after a phone changed hands) is disabled, so one
    token never reaches two rows. Registrations of one token are serialised by a transaction lock on
    the token, so concurrent ones take turns instead of colliding on the unique index.
    """
    await session.execute(_TOKEN_LOCK, {"key": f"device-token:{values['provider']}:{values['push_token']}"})
    await session.execute(
        update(Device)
        .where(
            Device.provider == values["provider"],
            Device.push_token == values["push_token"],
            Device.id != device_id,
            Device.push_enabled.is_(True),
        )
        .values(push_enabled=False, invalidated_at=func.now(), invalid_reason="token_moved")
    )
    fields = {**values, "push_enabled": True, "invalidated_at": None, "invalid_reason": None}
    stmt = (
        insert(Device)
        .values(id=device_id, user_id=user_id, **fields)
        .on_conflict_do_update(
            index_elements=[Device.id],
            set_={**fields, "registered_at": func.now()},
            where=Device.user_id == user_id,
        )
        .returning(Device)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def lock_user(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Lock the user's row until the transaction ends (serialises what counts the user's devices)."""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))


async def count_enabled_devices(session: AsyncSession, user_id: uuid.UUID, *, other_than: uuid.UUID) -> int:
    """The user's devices with push enabled, not counting ``other_than`` (the one being registered)."""
    stmt = select(func.count()).where(
        Device.user_id == user_id, Device.push_enabled.is_(True), Device.id != other_than
    )
    return int((await session.execute(stmt)).scalar_one())


async def list_devices(session: AsyncSession, user_id: uuid.UUID) -> list[Device]:
    return list(
        (
            await session.scalars(
                select(Device).where(Device.user_id == user_id).order_by(Device.registered_at)
            )
        ).all()
    )


async def disable_device(
    session: AsyncSession, user_id: uuid.UUID, device_id: uuid.UUID, reason: str
) -> bool:
    result = await session.execute(
        update(Device)
        .where(Device.id == device_id, Device.user_id == user_id)
        .values(push_enabled=False, invalidated_at=func.now(), invalid_reason=reason)
    )
    return bool(getattr(result, "rowcount", 0))


_CREATE_EXPORT = text(
    "INSERT INTO data_exports (id, user_id, job_id, status) VALUES (:id, :user_id, :job_id, 'queued') "
    "ON CONFLICT (user_id) WHERE status IN ('queued', 'running') DO NOTHING RETURNING id"
)


async def create_export(
    session: AsyncSession, user_id: uuid.UUID, export_id: uuid.UUID, job_id: str
) -> DataExport | None:
    """A new queued export; None when the user already has one queued or running."""
    params = {"id": export_id, "user_id": user_id, "job_id": job_id}
    if (await session.execute(_CREATE_EXPORT, params)).scalar_one_or_none() is None:
        return None
    return await get_export(session, export_id)


async def export_in_flight(session: AsyncSession, user_id: uuid.UUID) -> DataExport | None:
    """The user's queued or running export, if any (there is at most one)."""
    return await session.scalar(
        select(DataExport).where(DataExport.user_id == user_id, DataExport.status.in_(("queued", "running")))
    )


async def get_export(
    session: AsyncSession, export_id: uuid.UUID, *, for_update: bool = False
) -> DataExport | None:
    stmt = select(DataExport).where(DataExport.id == export_id)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


_START_EXPORT = text(
    """
    UPDATE data_exports e SET status = 'running', error = NULL, finished_at = NULL
    WHERE e.id = :id AND (e.status = 'queued' OR (e.status = 'failed' AND NOT EXISTS (
        SELECT 1 FROM data_exports o
        WHERE o.user_id = e.user_id AND o.id <> e.id AND o.status IN ('queued', 'running'))))
    """
)


async def mark_export_running(session: AsyncSession, export_id: uuid.UUID) -> None:
    """A queued export, or a failed one whose job an operator retried (unless the user has started
    another meanwhile: one export runs at a time), is running."""
    await session.execute(_START_EXPORT, {"id": export_id})


_FINISH_EXPORT = text(
    "UPDATE data_exports SET status = 'done', document = CAST(:document AS jsonb), row_count = :rows, "
    "size_bytes = :size, error = NULL, finished_at = now(), expires_at = :expires_at WHERE id = :id"
).bindparams(bindparam("document", type_=Text))


async def finish_export(
    session: AsyncSession, export_id: uuid.UUID, document: str, rows: int, expires_at: datetime
) -> None:
    """Store the document (already JSON text: it is encoded once, to measure it)."""
    params = {"id": export_id, "document": document, "rows": rows, "size": len(document.encode())}
    await session.execute(_FINISH_EXPORT, {**params, "expires_at": expires_at})


async def fail_export(session: AsyncSession, export_id: uuid.UUID, error: str, expires_at: datetime) -> bool:
    """Record why a queued or running export cannot be built; False when it had finished already."""
    result = await session.execute(
        update(DataExport)
        .where(DataExport.id == export_id, DataExport.status.in_(("queued", "running")))
        .values(status="failed", error=error, finished_at=func.now(), expires_at=expires_at)
    )
    return bool(getattr(result, "rowcount", 0))


async def expire_exports(session: AsyncSession, now: datetime, limit: int) -> int:
    """Delete the documents of up to ``limit`` exports past their expiry; the rows stay as ``expired``."""
    due = (
        select(DataExport.id)
        .where(DataExport.status.in_(("done", "failed")), DataExport.expires_at <= now)
        .order_by(DataExport.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(DataExport).where(DataExport.id.in_(due)).values(status="expired", document=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def forget_exports(session: AsyncSession, expired_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` expired exports whose expiry is older than ``expired_before``."""
    due = (
        select(DataExport.id)
        .where(DataExport.status == "expired", DataExport.expires_at <= expired_before)
        .order_by(DataExport.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(delete(DataExport).where(DataExport.id.in_(due)))
    return int(getattr(result, "rowcount", 0) or 0)


# --- sign-in --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrincipalRow:
    user_id: uuid.UUID
    is_admin: bool
    locked: bool


_PRINCIPAL = select(User.id, User.is_admin, User.locked_at.is_not(None))


async def principal_by_id(session: AsyncSession, user_id: uuid.UUID) -> PrincipalRow | None:
    row = (await session.execute(_PRINCIPAL.where(User.id == user_id))).first()
    return None if row is None else PrincipalRow(*row)


# One statement text for any number of ids (an IN list would be a new statement, prepared anew, per count).
_PRINCIPALS = _PRINCIPAL.where(User.id == any_(bindparam("ids", type_=ARRAY(Uuid))))


async def principals_by_ids(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, PrincipalRow]:
    """The users that exist among ``user_ids`` (one query however many)."""
    rows = await session.execute(_PRINCIPALS, {"ids": list(user_ids)})
    return {row[0]: PrincipalRow(*row) for row in rows}


async def principal_by_identity(session: AsyncSession, issuer: str, subject: str) -> PrincipalRow | None:
    row = (
        await session.execute(
            _PRINCIPAL.join(UserIdentity, UserIdentity.user_id == User.id).where(
                UserIdentity.issuer == issuer, UserIdentity.subject == subject
            )
        )
    ).first()
    return None if row is None else PrincipalRow(*row)


async def create_user_with_identity(
    session: AsyncSession, issuer: str, subject: str, email: str | None
) -> uuid.UUID | None:
    """A new user signed in by this identity; None when the identity exists already (a concurrent first
    sign-in created it: the savepoint undoes this attempt's user)."""
    user_id = uuid.uuid4()
    try:
        async with session.begin_nested():
            await session.execute(insert(User).values(id=user_id, email=email))
            await session.execute(
                insert(UserIdentity).values(
                    id=uuid.uuid4(), issuer=issuer, subject=subject, user_id=user_id, email=email
                )
            )
    except IntegrityError:
        return None
    return user_id


async def list_identities(session: AsyncSession, user_id: uuid.UUID) -> list[UserIdentity]:
    stmt = select(UserIdentity).where(UserIdentity.user_id == user_id).order_by(UserIdentity.created_at)
    return list((await session.scalars(stmt)).all())


async def find_identity(session: AsyncSession, issuer: str, subject: str) -> UserIdentity | None:
    return await session.scalar(
        select(UserIdentity).where(UserIdentity.issuer == issuer, UserIdentity.subject == subject)
    )


async def add_identity(
    session: AsyncSession, user_id: uuid.UUID, issuer: str, subject: str, email: str | None
) -> UserIdentity | None:
    """Attach the identity to the user; None when it exists already (for this user or another)."""
    stmt = (
        insert(UserIdentity)
        .values(id=uuid.uuid4(), issuer=issuer, subject=subject, user_id=user_id, email=email)
        .on_conflict_do_nothing(index_elements=[UserIdentity.issuer, UserIdentity.subject])
        .returning(UserIdentity)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def delete_identity(session: AsyncSession, user_id: uuid.UUID, identity_id: uuid.UUID) -> bool:
    result = await session.execute(
        delete(UserIdentity).where(UserIdentity.id == identity_id, UserIdentity.user_id == user_id)
    )
    return bool(getattr(result, "rowcount", 0))


# --- locking and deletion -------------------------------------------------------------------------

LOCKED_REASON = "account_locked"


async def lock_user_row(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    """The user's row, locked until the transaction ends (serialises deletion requests and cancels)."""
    return await session.scalar(
        select(User).where(User.id == user_id).with_for_update().execution_options(populate_existing=True)
    )


async def set_locked(session: AsyncSession, user_id: uuid.UUID, locked_at: datetime | None) -> None:
    await session.execute(update(User).where(User.id == user_id).values(locked_at=locked_at))


async def disable_devices_of_locked(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> int:
    """Stop every push to the user's devices: the fan-out and the send both skip disabled devices."""
    result = await session.execute(
        update(Device)
        .where(Device.user_id == user_id, Device.push_enabled.is_(True))
        .values(push_enabled=False, invalidated_at=now, invalid_reason=LOCKED_REASON)
    )
    return int(getattr(result, "rowcount", 0) or 0)


_REENABLE = text(
    """
    UPDATE devices d SET push_enabled = true, invalidated_at = NULL, invalid_reason = NULL
    WHERE d.user_id = :user_id AND d.invalid_reason = :reason AND NOT d.push_enabled
      AND NOT EXISTS (SELECT 1 FROM devices o
                      WHERE o.provider = d.provider AND o.push_token = d.push_token AND o.push_enabled)
    """
)


async def enable_devices_of_unlocked(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Undo :func:`disable_devices_of_locked`, except for a token another installation took meanwhile."""
    result = await session.execute(_REENABLE, {"user_id": user_id, "reason": LOCKED_REASON})
    return int(getattr(result, "rowcount", 0) or 0)


async def live_deletion(
    session: AsyncSession, user_id: uuid.UUID, *, for_update: bool = False
) -> AccountDeletion | None:
    stmt = select(AccountDeletion).where(
        AccountDeletion.user_id == user_id, AccountDeletion.status.in_(DELETION_LIVE)
    )
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(stmt)


async def latest_deletion(session: AsyncSession, user_id: uuid.UUID) -> AccountDeletion | None:
    return await session.scalar(
        select(AccountDeletion)
        .where(AccountDeletion.user_id == user_id)
        .order_by(AccountDeletion.requested_at.desc(), AccountDeletion.id)
        .limit(1)
    )


async def create_deletion(
    session: AsyncSession, deletion_id: uuid.UUID, user_id: uuid.UUID, job_id: str, not_before: datetime
) -> AccountDeletion:
    deletion = AccountDeletion(
        id=deletion_id, user_id=user_id, job_id=job_id, status="scheduled", not_before=not_before
    )
    session.add(deletion)
    await session.flush()
    await session.refresh(deletion)
    return deletion


async def get_deletion(
    session: AsyncSession, deletion_id: uuid.UUID, *, for_update: bool = False
) -> AccountDeletion | None:
    stmt = select(AccountDeletion).where(AccountDeletion.id == deletion_id)
    if for_update:
        stmt = stmt.with_for_update().execution_options(populate_existing=True)
    return await session.scalar(stmt)


async def update_deletion(session: AsyncSession, deletion_id: uuid.UUID, **values: Any) -> None:
    await session.execute(update(AccountDeletion).where(AccountDeletion.id == deletion_id).values(**values))


async def count_rows_deleted(session: AsyncSession, deletion_id: uuid.UUID, rows: int) -> None:
    if rows:
        await session.execute(
            update(AccountDeletion)
            .where(AccountDeletion.id == deletion_id)
            .values(rows_deleted=AccountDeletion.rows_deleted + rows)
        )


async def delete_user_row(session: AsyncSession, user_id: uuid.UUID) -> int:
    """The user's row; references to it are cleared (SET NULL) or their rows go with it (CASCADE)."""
    result = await session.execute(delete(User).where(User.id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)


async def open_deletions(
    session: AsyncSession, older_than: datetime, after: tuple[datetime, str] | None, limit: int
) -> list[tuple[uuid.UUID, str, datetime]]:
    """Deletions still to be carried out, requested before ``older_than``, oldest first after ``after``
    (requested at, id): ``(id, job id, requested at)``."""
    query = select(AccountDeletion.id, AccountDeletion.job_id, AccountDeletion.requested_at).where(
        AccountDeletion.status.in_(DELETION_LIVE), AccountDeletion.requested_at < older_than
    )
    if after is not None:
        query = query.where(
            tuple_(AccountDeletion.requested_at, AccountDeletion.id) > tuple_(after[0], uuid.UUID(after[1]))
        )
    rows = await session.execute(
        query.order_by(AccountDeletion.requested_at, AccountDeletion.id).limit(limit)
    )
    return [(row.id, row.job_id, row.requested_at) for row in rows]


async def outbox_jobs_of(session: AsyncSession, user_id: uuid.UUID) -> list[tuple[str, str]]:
    """(queue, job id) of every job staged for the user that the outbox still remembers."""
    rows = await session.execute(
        select(OutboxRow.queue, OutboxRow.job_id).where(OutboxRow.user_id == user_id)
    )
    return [(queue, job_id) for queue, job_id in rows]


_OPEN = ("queued", "running")


async def open_exports(
    session: AsyncSession, older_than: datetime, after: tuple[datetime, str] | None, limit: int
) -> list[tuple[uuid.UUID, str, datetime]]:
    """Exports still waiting on their job, requested before ``older_than``, oldest first after ``after``
    (requested at, id): ``(id, job id, requested at)``."""
    query = select(DataExport.id, DataExport.job_id, DataExport.requested_at).where(
        DataExport.status.in_(_OPEN), DataExport.requested_at < older_than
    )
    if after is not None:
        query = query.where(
            tuple_(DataExport.requested_at, DataExport.id) > tuple_(after[0], uuid.UUID(after[1]))
        )
    rows = await session.execute(query.order_by(DataExport.requested_at, DataExport.id).limit(limit))
    return [(row.id, row.job_id, row.requested_at) for row in rows]


async def forget_deletions(session: AsyncSession, finished_before: datetime, limit: int) -> int:
    """Delete up to ``limit`` finished (done or cancelled) deletion requests older than the cutoff."""
    ended = func.coalesce(AccountDeletion.finished_at, AccountDeletion.cancelled_at)
    due = (
        select(AccountDeletion.id)
        .where(AccountDeletion.status.in_(("done", "cancelled")), ended < finished_before)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(delete(AccountDeletion).where(AccountDeletion.id.in_(due)))
    return int(getattr(result, "rowcount", 0) or 0)
