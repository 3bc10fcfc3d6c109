"""The caps on what a user may own, applied to a merge: a mutation that would create a row over its
entity's cap is rejected alone (``limit_reached``), the rest of the chunk applies.

Runs inside the merge's transaction, which holds the user's version lock, so the count cannot race an
API create or another merge of the same user.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs import caps
from habitjobs.sync import merge_sql
from habitjobs.sync.entities import EntitySpec
from habitjobs.sync.lww import EntityMerge
from habitjobs.sync.mutations import Op, Rejection


def _live(row: Mapping[str, Any] | None) -> bool:
    return row is not None and row["deleted_at"] is None


async def enforce(
    session: AsyncSession,
    spec: EntitySpec,
    merged: EntityMerge,
    ops: Sequence[Op],
    user_id: uuid.UUID,
    maximum: int,
) -> None:
    """Drop from ``merged`` the rows it would create beyond ``maximum`` live rows, in mutation order,
    and turn their mutations into rejections."""
    created = [
        row["id"]
        for row in merged.writes
        if row["deleted_at"] is None and not _live(merged.before[row["id"]])
    ]
    if not created:
        return
    removed = sum(
        1 for row in merged.writes if row["deleted_at"] is not None and _live(merged.before[row["id"]])
    )
    live = await merge_sql.count_live(session, spec, user_id)
    room = max(0, maximum - (live - removed))
    over = set(created[room:])
    if not over:
        return
    cap = caps.BY_ENTITY[spec.name]
    refused = {op.mutation_id for op in ops if op.id in over}
    merged.writes = [row for row in merged.writes if row["id"] not in over]
    for row_id in over:
        merged.before.pop(row_id, None)
    merged.applied = [m for m in merged.applied if m not in refused]
    merged.stale = [m for m in merged.stale if m not in refused]
    already = {r.mutation_id for r in merged.rejected}
    merged.rejected.extend(
        Rejection(m, caps.LIMIT_REACHED, cap.message(maximum), field="id") for m in sorted(refused - already)
    )
