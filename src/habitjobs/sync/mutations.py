"""From uploaded mutations to validated operations. Pure.

Content problems never fail a batch: each bad mutation becomes a :class:`Rejection` with a code, and the
others go on (a client whose queue is stuck behind one bad row would never sync again).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NotRequired

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from typing_extensions import TypedDict

from habitjobs.sync import clocks
from habitjobs.sync.clocks import WriteClock
from habitjobs.sync.entities import ENTITIES, EntitySpec, OpKind

# Rejection codes (the client drops a rejected mutation from its queue and may show the code).
UNKNOWN_ENTITY = "unknown_entity"
UNSUPPORTED_OP = "unsupported_op"
INVALID_ID = "invalid_id"
INVALID_TIMESTAMP = "invalid_timestamp"
INVALID_DATA = "invalid_data"
NOT_FOUND = "not_found"
ID_CONFLICT = "id_conflict"
# Passed every check, yet the database refused it (the merge isolates it instead of failing the batch).
UNPROCESSABLE = "unprocessable"


class MutationIn(BaseModel):
    """The shape of an uploaded mutation, checked when the upload is accepted (a wrong shape is a 422).

    Only the shape: entity, op, id, timestamp and data are checked by the merge, mutation by mutation.
    """

    # Non-finite numbers are written as constants (never silently as null): the upload check spots them.
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")

    mutation_id: int = Field(ge=1, le=2**53, description="the client's sequence number, +1 per mutation")
    entity: str = Field(min_length=1, max_length=64, examples=["habit_completion"])
    op: str = Field(min_length=1, max_length=16, description="upsert | patch | delete")
    id: str = Field(min_length=1, max_length=64, description="the row's UUID")
    client_updated_at: str = Field(
        min_length=1, max_length=64, description="ISO 8601 with offset", examples=["2026-03-03T06:10:04.120Z"]
    )
    data: dict[str, Any] | None = None


class StoredMutation(TypedDict):
    """A mutation as stored with its batch (a :class:`MutationIn` that passed), as the merge reads it:
    a plain dict, which costs less to re-read than a model."""

    mutation_id: int
    entity: str
    op: str
    id: str
    client_updated_at: str
    data: NotRequired[dict[str, Any] | None]
    # Set at upload for a mutation holding a value the database cannot keep (its data is then dropped):
    # the path of that value. The merge rejects the mutation.
    unstorable: NotRequired[str]


@dataclass(frozen=True, slots=True)
class Op:
    mutation_id: int
    spec: EntitySpec
    kind: OpKind
    id: uuid.UUID
    clock: WriteClock
    # upsert: every data field; patch: only the fields sent; delete: nothing.
    values: dict[str, Any]

    @property
    def timestamp(self) -> datetime:
        return self.clock[0]


@dataclass(frozen=True, slots=True)
class Rejection:
    mutation_id: int
    code: str
    message: str
    field: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mutation_id": self.mutation_id, "code": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


def _data_error(mutation_id: int, exc: ValidationError) -> Rejection:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in error["loc"])
    return Rejection(
        mutation_id,
        INVALID_DATA,
        f"{where or 'data'}: {error['msg']}",
        field=f"data.{where}" if where else "data",
    )


def validate(raw: StoredMutation, *, writer: str, clock_limit: datetime) -> Op | Rejection:
    """Check one mutation's content; the clock gets the writer as tie-break and is clamped."""
    mid = raw["mutation_id"]
    if "unstorable" in raw:
        where = raw["unstorable"]
        return Rejection(
            mid,
            INVALID_DATA,
            f"{where}: contains a character or number that cannot be stored (NUL, an unpaired surrogate, "
            "infinity or NaN)",
            field=where,
        )
    spec = ENTITIES.get(raw["entity"])
    if spec is None:
        return Rejection(mid, UNKNOWN_ENTITY, f"unknown entity {raw['entity']!r}", field="entity")
    if raw["op"] not in spec.ops:
        return Rejection(
            mid, UNSUPPORTED_OP, f"{raw['entity']} supports {', '.join(sorted(spec.ops))}", field="op"
        )
    kind: OpKind = raw["op"]
    try:
        entity_id = uuid.UUID(raw["id"])
    except ValueError:
        return Rejection(mid, INVALID_ID, "id is not a UUID", field="id")
    timestamp = clocks.parse_timestamp(raw["client_updated_at"])
    if timestamp is None:
        return Rejection(
            mid, INVALID_TIMESTAMP, clocks.timestamp_problem(raw["client_updated_at"]), "client_updated_at"
        )
    clock = (clocks.clamp(timestamp, clock_limit), writer)
    values: dict[str, Any] = {}
    if kind == "upsert":
        try:
            data = spec.data.model_validate(raw.get("data") or {})
        except ValidationError as exc:
            return _data_error(mid, exc)
        if spec.derived_id is not None and spec.derived_id(data) != entity_id.int:
            expected = uuid.UUID(int=spec.derived_id(data))
            return Rejection(mid, INVALID_ID, f"id must be {expected} for this data", field="id")
        values = data.__dict__.copy()  # the validated values as they are (a dump would convert them)
    elif kind == "patch":
        assert spec.patch is not None
        try:
            patch = spec.patch.model_validate(raw.get("data") or {})
        except ValidationError as exc:
            return _data_error(mid, exc)
        values = {k: v for k, v in patch.__dict__.items() if k in patch.model_fields_set}
        if not values:
            return Rejection(mid, INVALID_DATA, "a patch needs at least one field", field="data")
        for key, value in values.items():
            if value is None and key in spec.not_null:
                return Rejection(mid, INVALID_DATA, f"{key} may not be null", field=f"data.{key}")
    return Op(mid, spec, kind, entity_id, clock, values)


@functools.cache
def _items(entity: str, kind: OpKind) -> TypeAdapter[list[Any]]:
    """Validates the ids and data of many mutations of one entity and op in one call."""
    spec = ENTITIES[entity]
    data: Any = {"upsert": spec.data, "patch": spec.patch, "delete": None}[kind]
    fields: dict[str, Any] = {"id": (uuid.UUID, ...)}
    if data is not None:
        fields["data"] = (data, ...)
    item = create_model(f"{spec.name}_{kind}_item", __config__=ConfigDict(frozen=True), **fields)
    return TypeAdapter(list[item])


def validate_all(
    raws: Sequence[StoredMutation], *, writer: str, clock_limit: datetime
) -> tuple[list[Op], list[Rejection]]:
    """:func:`validate` for many mutations: the same outcome for each, with one model validation per
    entity and op instead of one per mutation (the merge's hottest loop). A group with any problem is
    checked again mutation by mutation, so every rejection reads exactly as :func:`validate` words it.
    """
    ops: list[Op] = []
    rejected: list[Rejection] = []

    def one_by_one(items: Sequence[StoredMutation]) -> None:
        for raw in items:
            checked = validate(raw, writer=writer, clock_limit=clock_limit)
            (rejected if isinstance(checked, Rejection) else ops).append(checked)  # type: ignore[arg-type]

    groups: dict[tuple[str, OpKind], list[StoredMutation]] = {}
    for raw in raws:
        spec = ENTITIES.get(raw["entity"])
        if spec is None or raw["op"] not in spec.ops or "unstorable" in raw:
            one_by_one([raw])
        else:
            groups.setdefault((spec.name, raw["op"]), []).append(raw)
    for (entity, kind), items in groups.items():
        spec = ENTITIES[entity]
        try:
            checked = _items(entity, kind).validate_python(
                [
                    {"id": r["id"]} if kind == "delete" else {"id": r["id"], "data": r.get("data") or {}}
                    for r in items
                ]
            )
        except ValidationError:
            one_by_one(items)
            continue
        for raw, item in zip(items, checked, strict=True):
            timestamp = clocks.parse_timestamp(raw["client_updated_at"])
            values: dict[str, Any] = {}
            if kind == "upsert":
                values = item.data.__dict__.copy()
                if spec.derived_id is not None and spec.derived_id(item.data) != item.id.int:
                    timestamp = None
            elif kind == "patch":
                values = {k: v for k, v in item.data.__dict__.items() if k in item.data.model_fields_set}
                if not values or any(values[k] is None for k in spec.not_null & values.keys()):
                    timestamp = None
            if timestamp is None:  # something to reject: say it the way validate() does
                one_by_one([raw])
                continue
            ops.append(
                Op(raw["mutation_id"], spec, kind, item.id, (min(timestamp, clock_limit), writer), values)
            )
    return ops, rejected


@dataclass(frozen=True)
class Plan:
    """What a merge run does with a batch, given the client's last merged mutation."""

    already_applied: int
    pending: list[StoredMutation]
    # (expected, found) when the batch starts after a mutation the server has not seen.
    gap: tuple[int, int] | None


def plan(mutations: Sequence[StoredMutation], last_mutation_id: int) -> Plan:
    """Skip what was merged before; refuse to jump over a mutation never received.

    Batches are contiguous runs of mutation ids (checked on upload), so a gap can only sit in front of
    the first mutation still pending.
    """
    pending = [m for m in mutations if m["mutation_id"] > last_mutation_id]
    skipped = len(mutations) - len(pending)
    if pending and pending[0]["mutation_id"] != last_mutation_id + 1:
        return Plan(skipped, pending, (last_mutation_id + 1, pending[0]["mutation_id"]))
    return Plan(skipped, pending, None)
