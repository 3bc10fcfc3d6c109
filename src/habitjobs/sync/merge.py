"""Merging one chunk of a batch inside the caller's transaction (which holds the user's version lock).

Per entity, in the order of :data:`ENTITIES`: read the affected rows (and the rows they reference) in one
statement each, fold the operations in memory (:mod:`habitjobs.sync.lww`), write the changed rows back in
one statement, tombstone the children of deleted rows. Then the dirty marks, in two statements.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.reminders.service import refresh_next_fire
from habitjobs.sync import merge_sql, owned_caps
from habitjobs.sync.entities import ENTITIES, DirtyMarks, EntitySpec
from habitjobs.sync.lww import EntityMerge, merge_entity
from habitjobs.sync.mutations import (
    ID_CONFLICT,
    UNPROCESSABLE,
    Op,
    Rejection,
    StoredMutation,
    validate_all,
)

log = logging.getLogger(__name__)

# Columns the server derives from a merged row, refreshed once the rows are written.
_DERIVED = {"reminder": refresh_next_fire}


@dataclass
class ChunkOutcome:
    applied: int = 0
    stale: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    marks: DirtyMarks = field(default_factory=DirtyMarks)


async def merge_chunk(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    writer: str,
    chunk: Sequence[StoredMutation],
    version: int,
    clock_limit: datetime,
    now: datetime,
    caps: Mapping[str, int] | None = None,
) -> ChunkOutcome:
    """Apply ``chunk`` for ``user_id``; every row written carries ``version``. Never commits.

    ``caps``: the most live rows the user may have, per entity name (rows created beyond are rejected).
    """
    outcome = ChunkOutcome()
    ops: dict[str, list[Op]] = {}
    valid, outcome.rejected = validate_all(chunk, writer=writer, clock_limit=clock_limit)
    for op in valid:
        ops.setdefault(op.spec.name, []).append(op)
    for spec in ENTITIES.values():
        if spec.name in ops:
            cap = (caps or {}).get(spec.name)
            written = await _merge_entity(session, spec, ops[spec.name], user_id, version, outcome, cap)
            derive = _DERIVED.get(spec.name)
            if derive is not None and written:
                await derive(session, written, now)
    if outcome.marks:
        await merge_sql.mark_dirty(session, user_id, outcome.marks)
    outcome.rejected.sort(key=lambda r: r.mutation_id)
    return outcome


async def merge_chunk_isolated(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    writer: str,
    chunk: Sequence[StoredMutation],
    version: int,
    clock_limit: datetime,
    now: datetime,
    caps: Mapping[str, int] | None = None,
) -> ChunkOutcome:
    """:func:`merge_chunk`, except that a mutation the database still refuses (a value that passed every
    check and fails anyway) is rejected alone (``unprocessable``) instead of failing the batch — which
    would fail again at every retry and hold back the client's later uploads.

    The chunk is merged in one go under a savepoint; only when that fails on content are its mutations
    merged again one by one, each under its own savepoint.
    """

    async def merge(mutations: Sequence[StoredMutation]) -> ChunkOutcome:
        async with session.begin_nested():
            return await merge_chunk(
                session,
                user_id=user_id,
                writer=writer,
                chunk=mutations,
                version=version,
                clock_limit=clock_limit,
                now=now,
                caps=caps,
            )

    try:
        return await merge(chunk)
    except Exception as exc:
        if not merge_sql.is_content_error(exc):
            raise
        log.warning(
            "a chunk of %d mutations failed on content (%s); merging them one by one", len(chunk), exc
        )
    total = ChunkOutcome()
    for raw in chunk:
        try:
            one = await merge([raw])
        except Exception as exc:
            if not merge_sql.is_content_error(exc):
                raise
            message = f"the server could not store this mutation ({type(exc).__name__})"
            total.rejected.append(Rejection(raw["mutation_id"], UNPROCESSABLE, message))
            continue
        total.applied += one.applied
        total.stale += one.stale
        total.rejected.extend(one.rejected)
        total.marks.merge(one.marks)
    total.rejected.sort(key=lambda r: r.mutation_id)
    return total


async def _merge_entity(
    session: AsyncSession,
    spec: EntitySpec,
    ops: list[Op],
    user_id: uuid.UUID,
    version: int,
    outcome: ChunkOutcome,
    cap: int | None = None,
) -> set[uuid.UUID]:
    """Merge one entity's operations; returns the ids of the rows written."""
    current = await merge_sql.fetch_rows(session, spec, {op.id for op in ops})
    parents = None
    if spec.parent is not None:
        column = spec.parent.column
        parent_ids = {op.values[column] for op in ops if column in op.values}
        parents = await merge_sql.fetch_owners(session, ENTITIES[spec.parent.entity], parent_ids)
    foreign: dict[str, set[uuid.UUID]] = {}
    for ref in spec.references:
        targets = {t for op in ops if (t := op.values.get(ref.column)) is not None}
        if targets:
            foreign[ref.column] = await merge_sql.foreign_ids(session, ENTITIES[ref.entity], targets, user_id)
    merged = merge_entity(
        spec, ops, user_id=user_id, version=version, current=current, parents=parents, foreign=foreign
    )
    if cap is not None:
        await owned_caps.enforce(session, spec, merged, ops, user_id, cap)
    written = await merge_sql.write_rows(session, spec, merged.writes) if merged.writes else set()
    _drop_lost_writes(merged, ops, written)
    merged.mark(spec, outcome.marks, written)
    if spec.cascade is not None and merged.deleted:
        deleted_at = {r["id"]: r["deleted_at"] for r in merged.writes if r["id"] in written}
        gone = {i: deleted_at[i] for i in merged.deleted if i in deleted_at}
        child = ENTITIES[spec.cascade.entity]
        for row in await merge_sql.cascade_delete(
            session, child, spec.cascade.column, gone, user_id=user_id, version=version
        ):
            child.marks(outcome.marks, row, row)
    outcome.applied += len(merged.applied)
    outcome.stale += len(merged.stale)
    outcome.rejected.extend(merged.rejected)
    return written


def _drop_lost_writes(merged: EntityMerge, ops: list[Op], written: set[uuid.UUID]) -> None:
    """A row the database refused to overwrite was taken, under the same id, by another user between
    the read and the write: its mutations are rejected like any other id conflict."""
    lost = {row["id"] for row in merged.writes} - written
    if not lost:
        return
    applied = set(merged.applied)
    moved = {op.mutation_id for op in ops if op.id in lost and op.mutation_id in applied}
    merged.applied = [m for m in merged.applied if m not in moved]
    merged.rejected.extend(Rejection(m, ID_CONFLICT, "this id is taken", field="id") for m in sorted(moved))
    merged.deleted = [i for i in merged.deleted if i not in lost]
