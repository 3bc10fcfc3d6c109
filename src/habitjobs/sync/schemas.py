"""API bodies of offline sync, and the sync job payloads' shapes they share."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from habitjobs.sync.models import SyncBatch
from habitjobs.sync.mutations import MutationIn

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
    mutations: list[MutationIn] = Field(
        min_length=1, description="consecutive mutation ids, oldest first; at most the configured limit"
    )


class RejectedOut(BaseModel):
    mutation_id: int
    code: str
    message: str
    field: str | None = None


class GapOut(BaseModel):
    """The batch starts after a mutation the server never received; push again from ``expected``."""

    expected: int
    found: int


class BatchOut(BaseModel):
    batch_id: uuid.UUID
    client_id: str
    job_id: str
    # queued | processing | applied | failed
    status: str
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
    upserted: list[dict[str, Any]] = Field(default_factory=list)
    deleted: list[uuid.UUID] = Field(default_factory=list)


class PullOut(BaseModel):
    # Keyed by table name: routines, habits, habit_completions, focus_sessions, reminders.
    changes: dict[str, TableChanges]
    cursor: str | None
    has_more: bool
    last_mutation_ids: dict[str, int]
    reset_required: bool = False
