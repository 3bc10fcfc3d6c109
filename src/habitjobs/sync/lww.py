"""Last-writer-wins merge of one entity's operations against its current rows. Pure.

The merge folds each row's operations in mutation order, exactly as a row-at-a-time merge would, but in
memory: the caller reads the affected rows once and writes the changed ones back in one statement.

Two kinds of entities:

- **record** (completions, focus sessions): the whole row is one register. An upsert replaces it, a
  delete tombstones it; each applies when its clock is at least the row's. A newer upsert brings a
  tombstoned row back, so check / uncheck from two phones converges on the latest tap.
- **settings** (routines, habits): every field is its own register with its own clock (``field_clocks``),
  so a rename on one phone and a re-order on another both survive, in any order. Deleting wins over any
  edit, earlier or later. An upsert is a patch of every field that also creates the row.

Writes made outside sync (the REST API) do not maintain ``field_clocks``; the ``_row`` entry records the
row clock as of the last sync write, and when the row clock has moved since, every field is treated as
written at that newer clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from habitjobs.sync import clocks
from habitjobs.sync.clocks import WriteClock
from habitjobs.sync.entities import DirtyMarks, EntitySpec
from habitjobs.sync.mutations import ID_CONFLICT, NOT_FOUND, Op, Rejection

Row = Mapping[str, Any]
_ROW_CLOCK_KEY = "_row"


@dataclass
class EntityMerge:
    """The outcome of merging one entity's operations of one chunk."""

    writes: list[dict[str, Any]] = field(default_factory=list)
    # The row as it was before, for each written id (None when new).
    before: dict[uuid.UUID, Row | None] = field(default_factory=dict)
    applied: list[int] = field(default_factory=list)
    stale: list[int] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    # Rows this merge turned into tombstones (their children are tombstoned too).
    deleted: list[uuid.UUID] = field(default_factory=list)

    def mark(self, spec: EntitySpec, marks: DirtyMarks, written: set[uuid.UUID]) -> None:
        for row in self.writes:
            if row["id"] in written:
                spec.marks(marks, row, self.before[row["id"]])


def row_clock(row: Row) -> WriteClock:
    return (row["client_updated_at"], row["device_id"])


def _group(ops: Sequence[Op]) -> dict[uuid.UUID, list[Op]]:
    by_id: dict[uuid.UUID, list[Op]] = {}
    for op in sorted(ops, key=lambda o: o.mutation_id):
        by_id.setdefault(op.id, []).append(op)
    return by_id


class _Fold:
    """One row's state while its operations are applied in order."""

    def __init__(self, spec: EntitySpec, entity_id: uuid.UUID, user_id: uuid.UUID, current: Row | None):
        self.spec = spec
        self.id = entity_id
        self.user_id = user_id
        self.state: dict[str, Any] | None = dict(current) if current is not None else None
        self.field_clocks: dict[str, WriteClock] = {}
        if self.state is not None and spec.merge == "settings":
            self.field_clocks = _effective_field_clocks(spec, self.state)
        self.changed = False

    def apply(self, op: Op) -> bool:
        """Apply ``op``; False when it lost to a newer write. Raises _NotFound for edits of no row."""
        if self.spec.merge == "record":
            return self._apply_record(op)
        return self._apply_settings(op)

    def _fresh(self, op: Op) -> dict[str, Any]:
        return {"id": self.id, "user_id": self.user_id, **op.values, "deleted_at": None}

    def _stamp(self, clock: WriteClock) -> None:
        assert self.state is not None
        self.state["client_updated_at"], self.state["device_id"] = clock
        self.changed = True

    def _apply_record(self, op: Op) -> bool:
        if self.state is not None and op.clock < row_clock(self.state):
            return False
        if op.kind == "upsert":
            self.state = self._fresh(op)
        elif self.state is None:
            raise _NotFound
        else:
            self.state["deleted_at"] = op.timestamp
        self._stamp(op.clock)
        return True

    def _apply_settings(self, op: Op) -> bool:
        if self.state is None:
            if op.kind != "upsert":
                raise _NotFound
            self.state = self._fresh(op)
            self.field_clocks = dict.fromkeys(self.spec.fields, op.clock)
            self._stamp(op.clock)
            return True
        deleted_at = self.state["deleted_at"]
        if deleted_at is not None:
            # Deleted for good; of two deletes the earlier time is kept, whatever the order they came in.
            if op.kind == "delete" and op.timestamp < deleted_at:
                self.state["deleted_at"] = op.timestamp
                self.changed = True
                return True
            return False
        if op.kind == "delete":
            self.state["deleted_at"] = op.timestamp
            self._stamp(max(op.clock, row_clock(self.state)))
            return True
        won = False
        for key, value in op.values.items():
            if op.clock >= self.field_clocks.get(key, clocks.ZERO):
                self.state[key] = value
                self.field_clocks[key] = op.clock
                won = True
        if won:
            self._stamp(max(op.clock, row_clock(self.state)))
        return won

    def row(self, version: int) -> dict[str, Any]:
        """The row to write: the state (the columns the merge reads are the ones it writes)."""
        assert self.state is not None
        out = self.state
        out["server_version"] = version
        if self.spec.merge == "settings":
            encoded = {k: clocks.encode(c) for k, c in self.field_clocks.items()}
            encoded[_ROW_CLOCK_KEY] = clocks.encode(row_clock(self.state))
            out["field_clocks"] = encoded
        return out


class _NotFound(Exception):
    pass


def _effective_field_clocks(spec: EntitySpec, row: Row) -> dict[str, WriteClock]:
    stored: Mapping[str, Any] = row.get("field_clocks") or {}
    decoded = {k: c for k, raw in stored.items() if (c := clocks.decode(raw)) is not None}
    current = row_clock(row)
    if decoded.get(_ROW_CLOCK_KEY) == current:
        decoded.pop(_ROW_CLOCK_KEY)
        return decoded
    # Written outside sync since (or never by sync): that write may have set any field.
    return {name: max(decoded.get(name, clocks.ZERO), current) for name in spec.fields}


def merge_entity(
    spec: EntitySpec,
    ops: Sequence[Op],
    *,
    user_id: uuid.UUID,
    version: int,
    current: Mapping[uuid.UUID, Row],
    parents: Mapping[uuid.UUID, Row] | None = None,
    foreign: Mapping[str, set[uuid.UUID]] | None = None,
) -> EntityMerge:
    """Merge ``ops`` (one entity's, any order) into the rows ``current`` holds for their ids.

    ``current`` has every existing row with one of the ids, whoever owns it. ``parents`` has the rows of
    the spec's parent entity that the upserts point at; ``foreign`` maps each reference column to the
    ids it may not use (another user's rows).
    """
    result = EntityMerge()
    for entity_id, row_ops in _group(ops).items():
        existing = current.get(entity_id)
        if existing is not None and existing["user_id"] != user_id:
            result.rejected.extend(
                Rejection(op.mutation_id, ID_CONFLICT, "this id is taken", field="id") for op in row_ops
            )
            continue
        fold = _Fold(spec, entity_id, user_id, existing)
        for op in row_ops:
            refused = _check_references(spec, op, user_id, parents or {}, foreign or {})
            if refused is not None:
                result.rejected.append(refused)
                continue
            try:
                (result.applied if fold.apply(op) else result.stale).append(op.mutation_id)
            except _NotFound:
                result.rejected.append(
                    Rejection(op.mutation_id, NOT_FOUND, f"no {spec.name} with this id", field="id")
                )
        if fold.changed:
            row = fold.row(version)
            result.writes.append(row)
            result.before[entity_id] = existing
            if row["deleted_at"] is not None and (existing is None or existing["deleted_at"] is None):
                result.deleted.append(entity_id)
    return result


def _check_references(
    spec: EntitySpec,
    op: Op,
    user_id: uuid.UUID,
    parents: Mapping[uuid.UUID, Row],
    foreign: Mapping[str, set[uuid.UUID]],
) -> Rejection | None:
    if op.kind == "delete":
        return None
    if spec.parent is not None and spec.parent.column in op.values:
        parent_id = op.values[spec.parent.column]
        parent = parents.get(parent_id)
        column = f"data.{spec.parent.column}"
        if parent is None or parent["user_id"] != user_id:
            return Rejection(
                op.mutation_id, spec.parent.missing_code, f"no {spec.parent.entity} {parent_id}", column
            )
        if parent["deleted_at"] is not None:
            return Rejection(
                op.mutation_id,
                spec.parent.deleted_code,
                f"{spec.parent.entity} {parent_id} was deleted",
                column,
            )
    for ref in spec.references:
        target = op.values.get(ref.column)
        if target is not None and target in foreign.get(ref.column, set()):
            return Rejection(op.mutation_id, ref.code, f"no {ref.entity} {target}", f"data.{ref.column}")
    return None
