"""The merge's set-based statements: read the rows a chunk touches, write the changed ones back, tombstone
children, record dirty marks — one statement each per entity and chunk, whatever the number of rows.

Rows travel as one parameter each way (``jsonb_to_recordset`` in, one result set out): one prepared
statement per entity whatever the chunk size. All of it runs inside the caller's transaction, which holds
the user's version lock (:func:`habitjobs.owned.bump_version`).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import pydantic_core
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.sync.entities import ENTITIES, DirtyMarks, EntitySpec

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def is_content_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the database (or a computation before it) refused a value — a data exception
    (SQLSTATE class 22: out of range, bad encoding, ...) or a constraint violation (class 23) — rather
    than that the store is unwell. Retrying the same values cannot help."""
    if isinstance(exc, OverflowError | ValueError | ArithmeticError):
        return True
    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str) and state[:2] in ("22", "23"):
            return True
    return False


async def _driver(session: AsyncSession) -> Any:
    """The asyncpg connection under ``session``, inside the session's transaction.

    The merge's two big statements per entity and chunk (read the rows, write them back) run on it
    directly: SQLAlchemy's per-row result processing was a quarter of the merge's CPU time.
    """
    connection = await (await session.connection()).get_raw_connection()
    driver = connection.driver_connection
    if driver is None or not driver.is_in_transaction():
        raise RuntimeError("the merge's raw statements must run inside the session's transaction")
    return driver


@functools.cache
def _select_sql(entity: str, columns: str) -> tuple[str, frozenset[str]]:
    table = ENTITIES[entity].table
    wanted = [c for c in table.columns if columns == "*" or c.name in columns.split(",")]
    json_columns = frozenset(c.name for c in wanted if isinstance(c.type, JSONB))
    names = ", ".join(c.name for c in wanted)
    return f"SELECT {names} FROM {table.name} WHERE id = ANY($1::uuid[])", json_columns


async def _select(
    session: AsyncSession, spec: EntitySpec, columns: str, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    sql, json_columns = _select_sql(spec.name, columns)
    records = await (await _driver(session)).fetch(sql, list(ids))
    rows = {record["id"]: dict(record) for record in records}
    for row in rows.values():
        for name in json_columns:
            if isinstance(row[name], str):
                row[name] = json.loads(row[name])
    return rows


async def fetch_rows(
    session: AsyncSession, spec: EntitySpec, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """The rows with these ids, whoever owns them (the merge rejects other users' ids): the columns a
    merge writes, so that a merged row can be written back as it is."""
    return await _select(session, spec, ",".join(spec.columns), ids)


async def fetch_owners(
    session: AsyncSession, spec: EntitySpec, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """Owner and tombstone of the rows with these ids: what a reference check needs."""
    return await _select(session, spec, "id,user_id,deleted_at", ids)


async def foreign_ids(
    session: AsyncSession, spec: EntitySpec, ids: Iterable[uuid.UUID], user_id: uuid.UUID
) -> set[uuid.UUID]:
    """Which of these ids are rows of another user."""
    rows = await _select(session, spec, "id,user_id", ids)
    return {i for i, row in rows.items() if row["user_id"] != user_id}


async def count_live(session: AsyncSession, spec: EntitySpec, user_id: uuid.UUID) -> int:
    """How many live (not deleted) rows of ``spec`` the user has."""
    sql = f"SELECT count(*) FROM {spec.table.name} WHERE user_id = $1 AND deleted_at IS NULL"
    return int(await (await _driver(session)).fetchval(sql, user_id))


@functools.cache
def _write_sql(entity: str) -> str:
    spec = ENTITIES[entity]
    table = spec.table
    columns = spec.columns
    typed = ", ".join(f"{name} {table.c[name].type.compile(dialect=_PG)}" for name in columns)
    names = ", ".join(columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in ("id", "user_id"))
    # The guards repeat what the merge decided, so that a concurrent writer can never be overwritten:
    # never another user's row, never an older clock (COLLATE "C": writer ids compare by code point).
    return (
        f"INSERT INTO {table.name} AS t ({names}) "
        f"SELECT {names} FROM jsonb_to_recordset($1::jsonb) AS r({typed}) ORDER BY id "
        f"ON CONFLICT (id) DO UPDATE SET {updates} "
        "WHERE t.user_id = EXCLUDED.user_id "
        'AND (EXCLUDED.client_updated_at, EXCLUDED.device_id COLLATE "C") '
        '>= (t.client_updated_at, t.device_id COLLATE "C") '
        "RETURNING t.id"
    )


async def write_rows(session: AsyncSession, spec: EntitySpec, rows: list[dict[str, Any]]) -> set[uuid.UUID]:
    """Insert or overwrite ``rows`` (complete rows) in one statement; returns the ids written."""
    payload = pydantic_core.to_json(rows).decode()
    records = await (await _driver(session)).fetch(_write_sql(spec.name), payload)
    return {record[0] for record in records}


async def cascade_delete(
    session: AsyncSession,
    child: EntitySpec,
    column: str,
    parents: dict[uuid.UUID, datetime],
    *,
    user_id: uuid.UUID,
    version: int,
) -> list[dict[str, Any]]:
    """Tombstone the user's live ``child`` rows pointing at the deleted parents; returns them."""
    table = child.table
    stmt = text(
        f"UPDATE {table.name} AS c SET deleted_at = p.deleted_at, server_version = :version "
        "FROM unnest(CAST(:ids AS uuid[]), CAST(:ats AS timestamptz[])) AS p(id, deleted_at) "
        f"WHERE c.{column} = p.id AND c.user_id = :user_id AND c.deleted_at IS NULL "
        "RETURNING c.*"
    )
    result = await session.execute(
        stmt,
        {"ids": list(parents), "ats": list(parents.values()), "user_id": user_id, "version": version},
    )
    return [dict(row) for row in result.mappings()]


_MARK = text(
    "WITH days AS ("
    "  INSERT INTO stats_dirty_days AS s (user_id, local_date) "
    "  SELECT :user_id, d FROM unnest(CAST(:days AS date[])) AS d "
    "  ON CONFLICT (user_id, local_date) DO UPDATE SET marked_at = now() RETURNING 1"
    "), streaks AS ("
    "  INSERT INTO streak_dirty AS s (user_id, habit_id, from_date) "
    "  SELECT :user_id, h, f FROM unnest(CAST(:habits AS uuid[]), CAST(:froms AS date[])) AS x(h, f) "
    "  ON CONFLICT (user_id, habit_id) DO UPDATE "
    "  SET from_date = LEAST(s.from_date, EXCLUDED.from_date), marked_at = now() RETURNING 1"
    ") SELECT (SELECT count(*) FROM days), (SELECT count(*) FROM streaks)"
)


async def mark_dirty(session: AsyncSession, user_id: uuid.UUID, marks: DirtyMarks) -> None:
    """Record what the statistics and streak recompute must redo, in one statement (a later mark
    refreshes ``marked_at``, which tells the recompute that the day changed again meanwhile)."""
    habits = sorted(marks.streaks)
    params = {
        "user_id": user_id,
        "days": sorted(marks.days),
        "habits": habits,
        "froms": [marks.streaks[h] for h in habits],
    }
    await session.execute(_MARK, params)
