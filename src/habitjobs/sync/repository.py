"""SQL of the sync domain: the user's version, clients, batches, the pull, retention.

The merge's set-based entity statements are in :mod:`habitjobs.sync.merge_sql`.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pydantic_core
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.errors import Unauthorized
from habitjobs.sync.cursor import Cursor
from habitjobs.sync.entities import ENTITIES, EntitySpec
from habitjobs.sync.models import SyncBatch, SyncClient, UserSyncState
from habitjobs.sync.schemas import PULL_HIDDEN

# --- the user's version: taken with habitjobs.owned.bump_version (API writes take it too) --------


async def use_snapshot(session: AsyncSession) -> None:
    """Make the session's transaction REPEATABLE READ: every statement then reads one snapshot.

    Must come before any other statement of the transaction.
    """
    await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


@dataclass(frozen=True)
class SyncState:
    version: int
    purged_through: int


async def sync_state(session: AsyncSession, user_id: uuid.UUID) -> SyncState:
    row = (
        await session.execute(
            select(UserSyncState.version, UserSyncState.purged_through).where(
                UserSyncState.user_id == user_id
            )
        )
    ).first()
    return SyncState(0, 0) if row is None else SyncState(int(row[0]), int(row[1]))


# --- clients --------------------------------------------------------------------------------------


async def client_progress(session: AsyncSession, user_id: uuid.UUID) -> dict[str, int]:
    rows = await session.execute(
        select(SyncClient.client_id, SyncClient.last_mutation_id).where(SyncClient.user_id == user_id)
    )
    return {client_id: int(last) for client_id, last in rows}


# --- batches --------------------------------------------------------------------------------------


_FOREIGN_KEY_VIOLATION = "23503"
_BATCH_COLUMNS = (
    "batch_id",
    "user_id",
    "client_id",
    "schema_version",
    "job_id",
    "mutation_count",
    "first_mutation_id",
    "last_mutation_id",
)
_INSERT_BATCHES = text(
    f"WITH r AS (SELECT * FROM unnest("
    "CAST(:batch_id AS uuid[]), CAST(:user_id AS uuid[]), CAST(:client_id AS text[]), "
    "CAST(:schema_version AS integer[]), CAST(:job_id AS text[]), CAST(:mutation_count AS integer[]), "
    "CAST(:first_mutation_id AS bigint[]), CAST(:last_mutation_id AS bigint[]), CAST(:payload AS text[])"
    f") AS r({', '.join(_BATCH_COLUMNS)}, payload)), "
    f"status AS (INSERT INTO sync_batches ({', '.join(_BATCH_COLUMNS)}) "
    f"SELECT {', '.join(_BATCH_COLUMNS)} FROM r "
    # Only for users that exist and whose deletion was not requested (they may not write any more).
    "WHERE EXISTS (SELECT 1 FROM users AS u WHERE u.id = r.user_id AND u.locked_at IS NULL) "
    "ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id, user_id, received_at), "
    # The payload goes to the partition of the batch's arrival (the same now(): one transaction).
    "payload AS (INSERT INTO sync_batch_payloads (batch_id, received_at, user_id, payload) "
    "SELECT s.batch_id, s.received_at, s.user_id, CAST(r.payload AS jsonb) "
    "FROM status AS s JOIN r ON r.batch_id = s.batch_id) "
    "SELECT batch_id, received_at FROM status"
)


async def insert_batches(
    session: AsyncSession, batches: Sequence[tuple[dict[str, Any], str]]
) -> dict[uuid.UUID, datetime]:
    """Store new batches (header values, payload as JSON text) in one statement; returns the ids that
    were new, with their arrival time. Ids that exist already are left as they are, and so are batches of
    users that do not exist or are being deleted (locked).

    Raises :class:`Unauthorized` when a user is deleted while the statement runs: the rows reference it.
    """
    params: dict[str, Any] = {c: [values[c] for values, _ in batches] for c in _BATCH_COLUMNS}
    params["payload"] = [payload for _, payload in batches]
    try:
        result = await session.execute(_INSERT_BATCHES, params)
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) == _FOREIGN_KEY_VIOLATION:
            raise Unauthorized("the token's user no longer exists") from None
        raise
    return {batch_id: received_at for batch_id, received_at in result}


_BATCH_HEADER = list(SyncBatch.__table__.columns)
_HEADER_SQL = (
    "SELECT " + ", ".join(c.name for c in _BATCH_HEADER) + " FROM sync_batches WHERE batch_id = :batch_id"
)
_GET_BATCH = text(_HEADER_SQL).columns(*_BATCH_HEADER)
_LOCK_BATCH = text(_HEADER_SQL + " FOR UPDATE").columns(*_BATCH_HEADER)
_WITH_PAYLOAD = text(
    "SELECT " + ", ".join(f"b.{c.name}" for c in _BATCH_HEADER) + ", p.payload::text AS payload_text "
    "FROM sync_batches AS b LEFT JOIN sync_batch_payloads AS p "
    "ON p.batch_id = b.batch_id AND p.received_at = b.received_at "
    "WHERE b.batch_id = :batch_id"
).columns(*_BATCH_HEADER)
# A chunk's bookkeeping in one statement: the client's progress, and the batch's outcome so far.
_PROGRESS = text(
    "WITH client AS (UPDATE sync_clients SET last_mutation_id = :last "
    "  WHERE user_id = :user_id AND client_id = :client_id AND :advance RETURNING 1) "
    "UPDATE sync_batches SET status = :status, result = CAST(:result AS jsonb), error = :error, "
    "applied_at = CASE WHEN :finished THEN now() END "
    "WHERE batch_id = :batch_id"
)


async def get_batch(session: AsyncSession, batch_id: uuid.UUID) -> SyncBatch | None:
    """The batch without its payload (status answers)."""
    row = (await session.execute(_GET_BATCH, {"batch_id": batch_id})).first()
    return None if row is None else SyncBatch(**row._asdict())


_GET_BATCHES = text(
    "SELECT " + ", ".join(c.name for c in _BATCH_HEADER) + " FROM sync_batches "
    "WHERE batch_id = ANY(CAST(:ids AS uuid[]))"
).columns(*_BATCH_HEADER)


async def get_batches(session: AsyncSession, batch_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, SyncBatch]:
    if not batch_ids:
        return {}
    result = await session.execute(_GET_BATCHES, {"ids": list(batch_ids)})
    return {row.batch_id: SyncBatch(**row._asdict()) for row in result}


_LOCK_BATCH_AND_CLIENT = text(
    "WITH client AS ("
    "  INSERT INTO sync_clients AS c (user_id, client_id, schema_version) "
    "  VALUES (:user_id, :client_id, :schema) "
    "  ON CONFLICT (user_id, client_id) DO UPDATE SET schema_version = :schema, last_seen_at = now() "
    "  RETURNING c.last_mutation_id) "
    "SELECT " + ", ".join(f"b.{c.name}" for c in _BATCH_HEADER) + ", client.last_mutation_id AS client_last "
    "FROM sync_batches AS b, client WHERE b.batch_id = :batch_id FOR UPDATE OF b"
).columns(*_BATCH_HEADER)


async def lock_batch_and_client(
    session: AsyncSession, batch: SyncBatch, schema_version: int
) -> tuple[SyncBatch | None, int | None]:
    """Lock the batch row and register its client (first use), in one statement; returns the batch as
    it is now and the client's last merged mutation id (None for both when the batch is gone).

    Run after the user's version lock: both rows are only ever written under it, so the order in which
    this statement takes its locks cannot deadlock.
    """
    params = {
        "batch_id": batch.batch_id,
        "user_id": batch.user_id,
        "client_id": batch.client_id,
        "schema": schema_version,
    }
    row = (await session.execute(_LOCK_BATCH_AND_CLIENT, params)).first()
    if row is None:
        return None, None
    values = row._asdict()
    last = int(values.pop("client_last"))
    return SyncBatch(**values), last


async def get_batch_for_update(session: AsyncSession, batch_id: uuid.UUID) -> SyncBatch | None:
    row = (await session.execute(_LOCK_BATCH, {"batch_id": batch_id})).first()
    return None if row is None else SyncBatch(**row._asdict())


async def batch_with_payload(
    session: AsyncSession, batch_id: uuid.UUID
) -> tuple[SyncBatch, str | None] | None:
    """The batch, and its mutations as JSON text (the caller parses and validates it in one pass); None
    for the text when the payload's partition was dropped."""
    row = (await session.execute(_WITH_PAYLOAD, {"batch_id": batch_id})).first()
    if row is None:
        return None
    values = row._asdict()
    payload: str | None = values.pop("payload_text")
    return SyncBatch(**values), payload


async def save_progress(
    session: AsyncSession,
    batch: SyncBatch,
    status: str,
    result: dict[str, Any],
    *,
    merged_through: int | None = None,
    error: str | None = None,
) -> None:
    """Record the batch's status and outcome (``applied_at`` once final) and, when a chunk was merged,
    the client's last merged mutation — together, so they always agree."""
    params = {
        "batch_id": batch.batch_id,
        "user_id": batch.user_id,
        "client_id": batch.client_id,
        "advance": merged_through is not None,
        "last": merged_through or 0,
        "status": status,
        "result": pydantic_core.to_json(result).decode(),
        "error": error,
        "finished": status in ("applied", "failed"),
    }
    await session.execute(_PROGRESS, params)


async def open_batch_holding(
    session: AsyncSession, user_id: uuid.UUID, client_id: str, mutation_id: int
) -> uuid.UUID | None:
    """The client's upload, not merged yet, that contains ``mutation_id`` (the one to merge first)."""
    found: uuid.UUID | None = await session.scalar(
        select(SyncBatch.batch_id)
        .where(
            SyncBatch.user_id == user_id,
            SyncBatch.client_id == client_id,
            SyncBatch.status.in_(("queued", "processing")),
            SyncBatch.first_mutation_id <= mutation_id,
            SyncBatch.last_mutation_id >= mutation_id,
        )
        .order_by(SyncBatch.received_at)
        .limit(1)
    )
    return found


_OPEN_BATCHES = (
    "SELECT batch_id, job_id, received_at FROM sync_batches "
    "WHERE status IN ('queued', 'processing') AND received_at < :older_than {after} "
    "ORDER BY received_at, batch_id LIMIT :limit"
)
_AFTER = "AND (received_at, batch_id) > (:after_at, CAST(:after_id AS uuid))"


async def open_batches(
    session: AsyncSession, older_than: datetime, after: tuple[datetime, str] | None, limit: int
) -> list[tuple[uuid.UUID, str, datetime]]:
    """Batches not merged yet that arrived before ``older_than``, oldest first, after ``after`` (received
    at, batch id): ``(batch id, job id, received at)``. Reads the partial index on open batches only."""
    params: dict[str, Any] = {"older_than": older_than, "limit": limit}
    if after is not None:
        params.update(after_at=after[0], after_id=after[1])
    sql = text(_OPEN_BATCHES.format(after=_AFTER if after is not None else ""))
    rows = await session.execute(sql, params)
    return [(row.batch_id, row.job_id, row.received_at) for row in rows]


_REOPEN = text(
    "UPDATE sync_batches SET status = 'queued', error = NULL, applied_at = NULL, "
    "result = result - 'job_failed' "
    "WHERE batch_id = :batch_id AND status = 'failed' AND result->>'job_failed' IS NOT NULL"
)


async def reopen_failed_by_job(session: AsyncSession, batch_id: uuid.UUID) -> bool:
    """Put a batch whose merge job failed for good back to ``queued`` (its job runs again)."""
    result = await session.execute(_REOPEN, {"batch_id": batch_id})
    return bool(getattr(result, "rowcount", 0))


# --- pull -----------------------------------------------------------------------------------------

# Columns a client never sees: ownership, merge bookkeeping, server-side timestamps.
_HIDDEN = list(PULL_HIDDEN)


@dataclass(frozen=True)
class Change:
    version: int
    rank: int
    id: uuid.UUID
    deleted: bool
    row: dict[str, Any] | None

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.version, self.rank, self.id)


@functools.cache
def _pull_sql(live_only: bool) -> Any:
    parts = []
    for rank, spec in enumerate(ENTITIES.values()):
        live = " AND t.deleted_at IS NULL" if live_only else ""
        parts.append(
            f"(SELECT t.server_version AS version, {rank} AS rank, t.id, "
            "t.deleted_at IS NOT NULL AS deleted, "
            "CASE WHEN t.deleted_at IS NULL THEN to_jsonb(t) - CAST(:hidden AS text[]) END AS row "
            f"FROM {spec.table.name} AS t "
            f"WHERE t.user_id = :user_id AND t.server_version >= :version{live} "
            f"AND (t.server_version, {rank}, t.id) > (:version, :rank, :id) "
            "ORDER BY t.server_version, t.id LIMIT :limit)"
        )
    sql = " UNION ALL ".join(parts) + " ORDER BY version, rank, id LIMIT :limit"
    return text(sql).columns(row=JSONB)


async def changes_after(
    session: AsyncSession, user_id: uuid.UUID, after: Cursor, limit: int, *, live_only: bool
) -> list[Change]:
    """Up to ``limit`` changed rows after ``after``, in cursor order (tombstones without data)."""
    result = await session.execute(
        _pull_sql(live_only),
        {
            "user_id": user_id,
            "version": after.version,
            "rank": after.rank,
            "id": after.id,
            "limit": limit,
            "hidden": _HIDDEN,
        },
    )
    return [Change(int(r.version), int(r.rank), r.id, bool(r.deleted), r.row) for r in result]


# --- retention ------------------------------------------------------------------------------------


@functools.cache
def _purge_sql(entity: str) -> Any:
    spec = ENTITIES[entity]
    children = ""
    if spec.cascade is not None:
        child = ENTITIES[spec.cascade.entity].table.name
        # Rows whose parent goes take the database's ON DELETE CASCADE with them: count them in.
        children = (
            f" UNION ALL SELECT c.user_id, c.server_version FROM {child} AS c "
            f"JOIN gone ON c.{spec.cascade.column} = gone.id"
        )
    return text(
        f"WITH gone AS (DELETE FROM {spec.table.name} "
        "WHERE id = ANY(CAST(:ids AS uuid[])) AND deleted_at < :cutoff "
        "RETURNING user_id, id, server_version), "
        f"versions AS (SELECT user_id, server_version FROM gone{children}) "
        "INSERT INTO user_sync_state AS s (user_id, version, purged_through) "
        "SELECT user_id, 0, max(server_version) FROM versions GROUP BY user_id "
        "ON CONFLICT (user_id) DO UPDATE "
        "SET purged_through = GREATEST(s.purged_through, EXCLUDED.purged_through) "
        "RETURNING s.user_id"
    )


@functools.cache
def _tombstones_sql(entity: str) -> Any:
    table = ENTITIES[entity].table.name
    return text(f"SELECT id, user_id FROM {table} WHERE deleted_at < :cutoff LIMIT :limit")


# The users' version rows, locked in one order: a merge takes its user's lock before it touches that
# user's rows, so the purge must too (deleting first and moving the horizon after would take the two
# locks the other way round, and deadlock with a merge of the same user).
_LOCK_USERS = text(
    "SELECT user_id FROM user_sync_state WHERE user_id = ANY(CAST(:users AS uuid[])) "
    "ORDER BY user_id FOR UPDATE"
)


async def purge_tombstones(session: AsyncSession, spec: EntitySpec, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` tombstones older than ``cutoff`` and move each affected user's horizon past
    them. Returns how many tombstones were looked at (``limit`` when more may be left)."""
    found = (await session.execute(_tombstones_sql(spec.name), {"cutoff": cutoff, "limit": limit})).all()
    if not found:
        return 0
    users = sorted({row.user_id for row in found})
    await session.execute(_LOCK_USERS, {"users": users})
    await session.execute(_purge_sql(spec.name), {"ids": [row.id for row in found], "cutoff": cutoff})
    return len(found)


_DELETE_FINISHED_BATCHES = text(
    "DELETE FROM sync_batches WHERE batch_id = ANY(ARRAY("
    "  SELECT batch_id FROM sync_batches WHERE received_at < :cutoff AND status IN ('applied', 'failed') "
    "  LIMIT :limit FOR UPDATE SKIP LOCKED))"
)


async def delete_finished_batches(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` finished uploads' status rows that arrived before ``cutoff``."""
    result = await session.execute(_DELETE_FINISHED_BATCHES, {"cutoff": cutoff, "limit": limit})
    return int(getattr(result, "rowcount", 0) or 0)


_OPEN_BATCH_IN = text(
    "SELECT EXISTS (SELECT 1 FROM sync_batches WHERE status IN ('queued', 'processing') "
    "AND received_at >= :start AND received_at < :end)"
)


async def open_batch_received_in(session: AsyncSession, start: datetime, end: datetime) -> bool:
    """Whether an upload received in ``[start, end)`` is not merged yet (it still needs its payload)."""
    return bool((await session.execute(_OPEN_BATCH_IN, {"start": start, "end": end})).scalar_one())
