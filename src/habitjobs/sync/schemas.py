"""API bodies of offline sync, and the sync job payloads' shapes they share."""

from __future__ import annotations

import typing
import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from habitjobs.bounds import TIME_OF_DAY_PATTERN
from habitjobs.sync.entities import ENTITIES, EntitySpec, OpKind
from habitjobs.sync.models import SyncBatch
from habitjobs.sync.mutations import MutationIn

# A field whose document schema is one added beside the models (see pull_schemas, mutation_union_schema)
# says so with this key; the document generator turns it into a reference.
SCHEMA_REF = "x-schema-ref"

SCHEMA_VERSION = 1
"""The protocol and entity shapes this server speaks; any other gets 409 ``reset_required``."""

ClientId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="the app installation's stable id (letters, digits, '.', '_', '-')",
    ),
]


class PushIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: ClientId
    batch_id: uuid.UUID = Field(description="chosen by the client, reused when it retries the same upload")
    schema_version: int
    # The document describes each mutation exactly (``SyncMutation``: one schema per entity and op), but the
    # upload checks only their common shape: a mutation whose entity, op, id, timestamp or data is wrong
    # is rejected alone by the merge (see ``BatchOut.rejected``), never with a 422 of the whole upload.
    mutations: list[Annotated[MutationIn, WithJsonSchema({SCHEMA_REF: "SyncMutation"})]] = Field(
        min_length=1, description="consecutive mutation ids, oldest first; at most the configured limit"
    )


class RejectedOut(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    mutation_id: int
    code: str
    message: str
    field: str | None = None


class GapOut(BaseModel):
    """The batch starts after a mutation the server never received; push again from ``expected``."""

    expected: int
    found: int


BatchStatus = Literal["queued", "processing", "applied", "failed"]


class BatchOut(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    batch_id: uuid.UUID
    client_id: str
    job_id: str
    status: BatchStatus
    status_url: str
    received_at: datetime
    applied_at: datetime | None = None
    mutation_count: int
    first_mutation_id: int
    # The client's last merged mutation (all of its mutations up to this one are applied or rejected).
    last_mutation_id: int | None = None
    applied: int = 0
    ignored_stale: int = 0
    already_applied: int = 0
    rejected: list[RejectedOut] = Field(default_factory=list)
    # The change stream position that contains this batch's writes.
    cursor: str | None = None
    gap: GapOut | None = None
    error: str | None = None

    @classmethod
    def of(cls, batch: SyncBatch) -> BatchOut:
        result: dict[str, Any] = batch.result or {}
        return cls(
            batch_id=batch.batch_id,
            client_id=batch.client_id,
            job_id=batch.job_id,
            status=batch.status,
            status_url=f"/v1/sync/batches/{batch.batch_id}",
            received_at=batch.received_at,
            applied_at=batch.applied_at,
            mutation_count=batch.mutation_count,
            first_mutation_id=batch.first_mutation_id,
            last_mutation_id=result.get("last_mutation_id"),
            applied=result.get("applied", 0),
            ignored_stale=result.get("ignored_stale", 0),
            already_applied=result.get("already_applied", 0),
            rejected=result.get("rejected", []),
            cursor=result.get("cursor"),
            gap=result.get("gap"),
            error=batch.error,
        )


class TableChanges(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    upserted: list[dict[str, Any]] = Field(default_factory=list)
    deleted: list[uuid.UUID] = Field(default_factory=list)


class PullOut(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    # Keyed by table name: routines, habits, habit_completions, focus_sessions, reminders (every table
    # on a page; none when ``reset_required``). Rows are described per table (``PullChanges``).
    changes: Annotated[dict[str, TableChanges], WithJsonSchema({SCHEMA_REF: "PullChanges"})]
    cursor: str | None
    has_more: bool
    last_mutation_ids: dict[str, int]
    reset_required: bool = False


# --- the document's view of mutations and pulled rows ----------------------------------------------

MUTATION_SCHEMA_NAME = "SyncMutation"


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _variant(spec: EntitySpec, kind: OpKind) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "mutation_id": (
            int,
            Field(ge=1, le=2**53, description="the client's sequence number, +1 per mutation"),
        ),
        "entity": (Literal[spec.name], ...),
        "op": (Literal[kind], ...),
        "id": (uuid.UUID, Field(description="the row's id")),
        "client_updated_at": (
            AwareDatetime,
            Field(
                description="when the app changed the row, with offset", examples=["2026-03-03T06:10:04.120Z"]
            ),
        ),
    }
    if kind == "upsert":
        fields["data"] = (spec.data, Field(description="the row's full state"))
    elif kind == "patch":
        fields["data"] = (spec.patch, Field(description="only the fields that change"))
    return create_model(
        f"{_camel(spec.name)}{kind.capitalize()}Mutation",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )


MUTATION_VARIANTS: tuple[type[BaseModel], ...] = tuple(
    _variant(spec, kind)
    for spec in ENTITIES.values()
    for kind in ("upsert", "patch", "delete")
    if kind in spec.ops
)


def mutation_union_schema(ref_template: str) -> dict[str, dict[str, Any]]:
    """``SyncMutation`` (a union on ``entity``) and one union per entity (on ``op``), by name."""
    schemas: dict[str, dict[str, Any]] = {}
    for spec in ENTITIES.values():
        variants = [f"{_camel(spec.name)}{kind.capitalize()}Mutation" for kind in sorted(spec.ops)]
        schemas[f"{_camel(spec.name)}Mutation"] = {
            "title": f"{_camel(spec.name)}Mutation",
            "oneOf": [{"$ref": ref_template.format(model=name)} for name in variants],
            "discriminator": {
                "propertyName": "op",
                "mapping": {
                    kind: ref_template.format(model=f"{_camel(spec.name)}{kind.capitalize()}Mutation")
                    for kind in sorted(spec.ops)
                },
            },
        }
    # One level of discriminator (on ``op``, per entity): generators handle a mapping to object schemas
    # only. The outer union needs none: every variant's ``entity`` is a constant.
    schemas[MUTATION_SCHEMA_NAME] = {
        "title": MUTATION_SCHEMA_NAME,
        "description": "One offline change, by `entity` then `op`. Each is checked by the merge: a wrong "
        "one is rejected alone (`BatchOut.rejected`, with a code and the field), the others apply.",
        "oneOf": [
            {"$ref": ref_template.format(model=f"{_camel(s.name)}Mutation")} for s in ENTITIES.values()
        ],
    }
    return schemas


# Columns a pulled row never carries (see the pull query).
PULL_HIDDEN = ("user_id", "field_clocks", "device_id", "created_at", "received_at")

_COLUMN_SCHEMAS: dict[type, dict[str, Any]] = {
    uuid.UUID: {"type": "string", "format": "uuid"},
    datetime: {"type": "string", "format": "date-time"},
    date: {"type": "string", "format": "date"},
    time: {"type": "string", "pattern": TIME_OF_DAY_PATTERN},
    int: {"type": "integer"},
    Decimal: {"type": "number"},
    bool: {"type": "boolean"},
    str: {"type": "string"},
}


def _row_schema(spec: EntitySpec) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for column in spec.table.columns:
        name = str(column.name)  # a plain str: SQLAlchemy's quoted_name is not JSON to every library
        if name in PULL_HIDDEN:
            continue
        schema = dict(_COLUMN_SCHEMAS[column.type.python_type])
        field = spec.data.model_fields.get(name)
        if field is not None and schema.get("type") == "string":
            choices = [a for a in typing.get_args(field.annotation) if isinstance(a, str)]
            if typing.get_origin(field.annotation) is Literal and choices:
                schema["enum"] = choices
        if name == "deleted_at":
            schema = {"type": "null", "description": "pulled rows are live (deletions come as ids)"}
        elif column.nullable:
            schema = {"anyOf": [schema, {"type": "null"}]}
        properties[name] = schema
    name = f"{_camel(spec.name)}Row"
    # deleted_at is always null in a pulled row: present, but nothing for a client to read.
    required = [p for p in properties if p != "deleted_at"]
    return {"title": name, "type": "object", "properties": properties, "required": required}


def pull_schemas(ref_template: str) -> dict[str, dict[str, Any]]:
    """``PullChanges`` (one entry per table) with each table's row shape, by name."""
    schemas: dict[str, dict[str, Any]] = {}
    tables: dict[str, Any] = {}
    for spec in ENTITIES.values():
        row = _row_schema(spec)
        schemas[row["title"]] = row
        changes = f"{_camel(spec.table.name)}Changes"
        schemas[changes] = {
            "title": changes,
            "type": "object",
            "properties": {
                "upserted": {"type": "array", "items": {"$ref": ref_template.format(model=row["title"])}},
                "deleted": {"type": "array", "items": {"type": "string", "format": "uuid"}},
            },
            "required": ["upserted", "deleted"],
        }
        tables[str(spec.table.name)] = {"$ref": ref_template.format(model=changes)}
    schemas["PullChanges"] = {
        "title": "PullChanges",
        "description": "Changed rows and deleted ids per table; every table on a page, none when "
        "`reset_required`.",
        "type": "object",
        "properties": tables,
        "additionalProperties": False,
    }
    return schemas
