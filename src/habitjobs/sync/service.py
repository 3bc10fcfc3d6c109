"""Use-cases of offline sync: accept an upload, merge it chunk by chunk, report on it, pull changes.

Services never commit: the route's or the job's transaction does.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pydantic_core
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs import bounds, owned
from habitjobs.accounts import signin
from habitjobs.caps import entity_caps
from habitjobs.config import Settings
from habitjobs.errors import (
    Conflict,
    HabitjobsError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermanentFailure,
    RetryLater,
    Unauthorized,
)
from habitjobs.observability import context as log_context
from habitjobs.queue.outbox import Outbox, StagedJob
from habitjobs.sync import clocks
from habitjobs.sync import cursor as cursors
from habitjobs.sync import repository as repo
from habitjobs.sync.entities import ENTITIES
from habitjobs.sync.merge import merge_chunk_isolated
from habitjobs.sync.models import SyncBatch
from habitjobs.sync.mutations import MutationIn, StoredMutation, plan
from habitjobs.sync.schemas import SCHEMA_VERSION, PullOut, PushIn, TableChanges

APPLY_JOB = "sync.apply_batch"
FINAL_STATUSES = frozenset({"applied", "failed"})
# A batch following a mutation nobody uploaded waits this long once (that upload may be in flight).
GAP_WAIT_S = 2.0

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# In an upload's JSON (non-finite numbers written as constants), what may mean a value PostgreSQL cannot
# keep; only then is the upload looked at value by value (the markers may also be plain text).
_SUSPECT = (b"\\u0000", b"Infinity", b"NaN")
_STORED = TypeAdapter(list[StoredMutation])


class ResetRequired(Conflict):
    """The client speaks a schema this server does not: it must drop its local data and pull afresh."""

    code = "reset_required"


def apply_job_id(batch_id: uuid.UUID) -> str:
    return f"sync-{batch_id}"


def batch_of_job_id(job_id: str) -> uuid.UUID | None:
    """The batch a ``sync.apply_batch`` job id names (None for an id of another form)."""
    try:
        return uuid.UUID(job_id.removeprefix("sync-")) if job_id.startswith("sync-") else None
    except ValueError:
        return None


# --- push -----------------------------------------------------------------------------------------


def _payload_json(mutations: list[MutationIn]) -> str:
    """The mutations as JSON text for a jsonb column.

    A mutation carrying something the column cannot keep (NUL, an unpaired surrogate, a number that is
    not finite) is stored without its data and with the path of the first such value: the merge rejects
    it alone (``invalid_data``) and merges the others, as for any other bad content.
    """
    try:
        encoded = pydantic_core.to_json(mutations, exclude_none=True, inf_nan_mode="constants")
    except pydantic_core.PydanticSerializationError:  # an unpaired surrogate
        encoded = b""
    if encoded and not any(marker in encoded for marker in _SUSPECT):
        return encoded.decode()  # the common case: one pass, nothing to look for
    stored: list[dict[str, Any]] = []
    for mutation in mutations:
        row = mutation.model_dump(exclude_none=True)
        where = _unstorable_path(row)
        if where is not None:
            row = {
                "mutation_id": mutation.mutation_id,
                **{key: _storable(row[key]) for key in ("entity", "op", "id", "client_updated_at")},
                "unstorable": where,
            }
        stored.append(row)
    return pydantic_core.to_json(stored).decode()


def _storable(text: str) -> str:
    return text if bounds.is_storable_text(text) else _UNSTORABLE.sub("\ufffd", text)


def _unstorable_path(value: Any, path: str = "") -> str | None:
    """The dotted path of the first value in ``value`` that JSON text in PostgreSQL cannot hold."""
    if isinstance(value, str):
        return None if bounds.is_storable_text(value) else path
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if not bounds.is_storable_text(str(key)):
                return path or "data"
            found = _unstorable_path(item, here)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _unstorable_path(item, f"{path}.{index}")
            if found is not None:
                return found
    return None


def _check_envelope(settings: Settings, body: PushIn) -> None:
    if body.schema_version != SCHEMA_VERSION:
        raise ResetRequired(
            f"schema_version {body.schema_version} is not supported (this server speaks {SCHEMA_VERSION}); "
            "reset local data and pull",
            reset_required=True,
        )
    if len(body.mutations) > settings.sync_max_mutations:
        raise PayloadTooLarge(
            f"{len(body.mutations)} mutations in one batch; at most {settings.sync_max_mutations}",
            max_mutations=settings.sync_max_mutations,
        )
    first = body.mutations[0].mutation_id
    for index, mutation in enumerate(body.mutations):
        if mutation.mutation_id != first + index:
            raise InvalidInput(
                f"mutation ids must be consecutive: expected {first + index}, got {mutation.mutation_id}",
                field=f"mutations.{index}.mutation_id",
            )


@dataclass(frozen=True)
class Upload:
    """A checked upload, ready to be stored (alone or in a group, see :mod:`habitjobs.sync.intake`)."""

    user_id: uuid.UUID
    values: dict[str, Any]
    payload_json: str
    # The request that uploaded it: its merge job's log lines carry it (uploads are stored in groups).
    request_id: str | None = field(default_factory=log_context.request_id.get)

    @property
    def batch_id(self) -> uuid.UUID:
        batch_id: uuid.UUID = self.values["batch_id"]
        return batch_id


def prepare_push(settings: Settings, user_id: uuid.UUID, body: PushIn) -> Upload:
    """Everything about an upload that needs no database: 409 / 413 / 422 are decided here."""
    _check_envelope(settings, body)
    values: dict[str, Any] = {
        "batch_id": body.batch_id,
        "user_id": user_id,
        "client_id": body.client_id,
        "schema_version": body.schema_version,
        "job_id": apply_job_id(body.batch_id),
        "mutation_count": len(body.mutations),
        "first_mutation_id": body.mutations[0].mutation_id,
        "last_mutation_id": body.mutations[-1].mutation_id,
    }
    return Upload(user_id, values, _payload_json(body.mutations))


Stored = tuple[SyncBatch, bool]


async def store_uploads(
    session: AsyncSession, outbox: Outbox, uploads: Sequence[Upload]
) -> list[Stored | HabitjobsError]:
    """Store the uploads and stage their merge jobs in the caller's transaction: one statement for the
    batches and one for the outbox rows, however many uploads.

    Per upload: the batch and whether it is new; or the error to answer. A batch id seen before gives
    the stored batch (its current status) and stages nothing — also when two identical requests race,
    in one group or in two: the second insert waits for the first and then finds its row. Another
    user's batch id is answered 404, as for any batch the caller cannot see. An uploader that does not exist
    or whose account is being deleted gets :class:`Unauthorized` (the route verified the token only); one
    deleted while the insert runs fails the whole statement (:class:`Unauthorized`), so the caller can
    retry uploads one by one.
    """
    first: dict[uuid.UUID, Upload] = {}
    for upload in uploads:
        first.setdefault(upload.batch_id, upload)
    rows = [(u.values, u.payload_json) for u in first.values()]
    # The uploaders were named by verified tokens only: the insert itself skips users that do not exist
    # or are being deleted, and only uploads it skipped are looked into (a batch id seen before, or such
    # a user) — the common group costs no statement more.
    inserted = await repo.insert_batches(session, rows) if rows else {}
    writers = {first[batch_id].user_id for batch_id in inserted}
    doubtful = {u.user_id for u in uploads if u.user_id not in writers}
    refused = await signin.refusals(session, doubtful) if doubtful else {}
    staged = [
        StagedJob(APPLY_JOB, {"batch_id": u.batch_id}, u.values["job_id"], u.user_id, request_id=u.request_id)
        for u in first.values()
        if u.batch_id in inserted
    ]
    if staged:
        await outbox.add_many(session, staged)
    known = await repo.get_batches(
        session, [i for i, u in first.items() if i not in inserted and u.user_id not in refused]
    )
    for batch_id, received_at in inserted.items():
        u = first[batch_id]
        known[batch_id] = SyncBatch(**u.values, status="queued", received_at=received_at, result={})
    outcomes: list[Stored | HabitjobsError] = []
    for upload in uploads:
        refusal = refused.get(upload.user_id)
        if refusal is not None:
            outcomes.append(Unauthorized(refusal.message))
            continue
        batch = known.get(upload.batch_id)
        if batch is None or batch.user_id != upload.user_id:
            # Another user's batch: answered like an id nobody has, so nothing confirms it exists.
            outcomes.append(NotFound(f"batch {upload.batch_id} not found"))
        else:
            outcomes.append((batch, upload is first[upload.batch_id] and upload.batch_id in inserted))
    return outcomes


async def accept_push(
    session: AsyncSession, outbox: Outbox, settings: Settings, user_id: uuid.UUID, body: PushIn
) -> Stored:
    """Check and store one upload in the caller's transaction (see :func:`store_uploads`)."""
    [outcome] = await store_uploads(session, outbox, [prepare_push(settings, user_id, body)])
    if isinstance(outcome, HabitjobsError):
        raise outcome
    return outcome


async def get_batch(session: AsyncSession, user_id: uuid.UUID, batch_id: uuid.UUID) -> SyncBatch:
    batch = await repo.get_batch(session, batch_id)
    if batch is None or batch.user_id != user_id:
        raise NotFound(f"batch {batch_id} not found")
    return batch


# --- merge ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchWork:
    """What merging a batch needs, read once per job run (the payload never changes)."""

    batch_id: uuid.UUID
    user_id: uuid.UUID
    client_id: str
    schema_version: int
    first_mutation_id: int
    status: str
    clock_limit: datetime
    mutations: list[StoredMutation]
    # The outcome so far, as read (for a batch merged before).
    result: dict[str, Any] = field(default_factory=dict)


async def load_batch(session: AsyncSession, settings: Settings, batch_id: uuid.UUID) -> BatchWork | None:
    found = await repo.batch_with_payload(session, batch_id)
    if found is None:
        return None
    batch, payload = found
    final = batch.status in FINAL_STATUSES
    return BatchWork(
        batch_id=batch.batch_id,
        user_id=batch.user_id,
        client_id=batch.client_id,
        schema_version=batch.schema_version,
        first_mutation_id=batch.first_mutation_id,
        status=batch.status,
        clock_limit=clocks.clamp_limit(batch.received_at, settings.sync_max_clock_skew_s),
        mutations=[] if final else _stored_mutations(payload),
        result=dict(batch.result or {}),
    )


def _stored_mutations(payload: str | None) -> list[StoredMutation]:
    if payload is None:
        # Its partition was dropped: only an upload left unmerged past sync_payload_keep_s (the partition
        # job keeps partitions holding unmerged uploads) or a hand edit gets here.
        raise PermanentFailure("the stored payload is gone (dropped by retention)")
    try:
        return _STORED.validate_json(payload)
    except ValidationError as exc:
        # Written by accept_push after validation: only a bug or a hand edit gets here; retrying cannot help.
        raise PermanentFailure(f"the stored payload is malformed: {exc.errors()[0]['msg']}") from exc


@dataclass
class Step:
    """Where a batch stands after one merge step."""

    done: bool
    status: str
    result: dict[str, Any] = field(default_factory=dict)
    # Another upload of the same client holds the next mutations: merge that one first.
    blocked_by: uuid.UUID | None = None


async def merge_next_chunk(
    session: AsyncSession, settings: Settings, work: BatchWork, *, may_wait: bool, now: datetime
) -> Step:
    """Merge the batch's next chunk in the caller's transaction, with its progress.

    The chunk's writes, the client's ``last_mutation_id`` and the batch's accumulated result commit
    together, so a run that dies between chunks resumes after the last committed one and applies
    nothing twice.

    When the batch starts after a mutation not merged yet: if an upload of the same client holds that
    mutation, the step says so (``blocked_by``) and the caller merges that upload first — a phone that
    uploads twice in a row does not wait for the jobs' order. If no upload holds it, the batch waits once
    (``may_wait``: one may still be in flight), then fails with the gap, telling the client where to
    resume.
    """
    version = await owned.bump_version(session, work.user_id)
    header = SyncBatch(batch_id=work.batch_id, user_id=work.user_id, client_id=work.client_id)
    batch, last = await repo.lock_batch_and_client(session, header, work.schema_version)
    if batch is None or last is None:
        return Step(True, "missing")
    if batch.status in FINAL_STATUSES:
        return Step(True, batch.status, dict(batch.result or {}))
    result: dict[str, Any] = {
        "applied": 0,
        "ignored_stale": 0,
        "processed": 0,
        "rejected": [],
        "marked": False,
        **(batch.result or {}),
    }
    todo = plan(work.mutations, last)
    # Mutations of this batch that another batch (a retry under a new id) merged first.
    result["already_applied"] = todo.already_applied - result["processed"]
    result["last_mutation_id"] = last
    if todo.gap is not None:
        expected, found = todo.gap
        holder = await repo.open_batch_holding(session, work.user_id, work.client_id, expected)
        if holder is not None and holder != work.batch_id:
            return Step(False, batch.status, result, blocked_by=holder)
        if may_wait:
            raise RetryLater(f"mutation {expected} has not been uploaded yet", after_s=GAP_WAIT_S)
        result["gap"] = {"expected": expected, "found": found}
        error = f"mutation_gap: expected mutation {expected} first, got {found}; push from {expected} on"
        await repo.save_progress(session, batch, "failed", result, error=error)
        return Step(True, "failed", result)
    if not todo.pending:
        await repo.save_progress(session, batch, "applied", result)
        return Step(True, "applied", result)
    chunk = todo.pending[: settings.sync_chunk_mutations]
    outcome = await merge_chunk_isolated(
        session,
        user_id=work.user_id,
        writer=work.client_id,
        chunk=chunk,
        version=version,
        clock_limit=work.clock_limit,
        now=now,
        caps=entity_caps(settings),
    )
    result["applied"] += outcome.applied
    result["ignored_stale"] += outcome.stale
    result["rejected"] = [*result["rejected"], *(r.as_json() for r in outcome.rejected)]
    result["processed"] += len(chunk)
    result["marked"] = result["marked"] or bool(outcome.marks)
    result["last_mutation_id"] = chunk[-1]["mutation_id"]
    result["cursor"] = cursors.Cursor(version).encode()
    status = "applied" if len(chunk) == len(todo.pending) else "processing"
    await repo.save_progress(session, batch, status, result, merged_through=chunk[-1]["mutation_id"])
    return Step(status == "applied", status, result)


async def fail_batch(
    session: AsyncSession, batch_id: uuid.UUID, error: str, *, job_failed: bool = False
) -> bool:
    """Record that merging gave up; the client must push again. ``job_failed``: the merge job failed for
    good (not a rule of the merge): a later run of the same job — an operator retrying it — takes the
    batch up again (:func:`reopen_if_job_failed`). Returns whether the batch changed."""
    batch = await repo.get_batch_for_update(session, batch_id)
    if batch is None or batch.status in FINAL_STATUSES:
        return False
    result = {**(batch.result or {}), **({"job_failed": True} if job_failed else {})}
    await repo.save_progress(session, batch, "failed", result, error=error[:1000])
    return True


def job_failure_message(reason: str) -> str:
    """What the phone reads in ``error`` when the merge job failed for good."""
    return f"job_failed: the merge did not complete ({reason}); push these mutations again"


def failed_by_job(work: BatchWork) -> bool:
    return work.status == "failed" and bool(work.result.get("job_failed"))


async def reopen_if_job_failed(session: AsyncSession, batch_id: uuid.UUID) -> bool:
    """A batch failed because its job failed for good goes back to ``queued`` when the job runs again."""
    return await repo.reopen_failed_by_job(session, batch_id)


# --- pull -----------------------------------------------------------------------------------------


async def pull(session: AsyncSession, user_id: uuid.UUID, raw_cursor: str | None, limit: int) -> PullOut:
    """Changes after the cursor, oldest first, and each client's last merged mutation — all read from one
    snapshot, so a client never sees its mutation acknowledged before the rows it changed."""
    after = cursors.decode(raw_cursor)
    await repo.use_snapshot(session)
    state = await repo.sync_state(session, user_id)
    progress = await repo.client_progress(session, user_id)
    if after != cursors.START and not state.purged_through <= after.version <= state.version:
        return PullOut(
            changes={}, cursor=None, has_more=False, last_mutation_ids=progress, reset_required=True
        )
    # A first sync needs no tombstones: the client has nothing to delete.
    changes = await repo.changes_after(session, user_id, after, limit + 1, live_only=after == cursors.START)
    has_more = len(changes) > limit
    changes = changes[:limit]
    tables = {spec.table.name: TableChanges() for spec in ENTITIES.values()}
    names = [spec.table.name for spec in ENTITIES.values()]
    for change in changes:
        table = tables[names[change.rank]]
        if change.deleted:
            table.deleted.append(change.id)
        else:
            assert change.row is not None
            table.upserted.append(change.row)
    next_cursor = changes[-1].cursor if has_more else cursors.Cursor(state.version)
    return PullOut(
        changes=tables,
        cursor=next_cursor.encode(),
        has_more=has_more,
        last_mutation_ids=progress,
    )


# --- retention ------------------------------------------------------------------------------------


async def purge_tombstones(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Forget up to ``limit`` tombstones older than ``cutoff``, children first (a parent's delete would
    cascade into children not yet counted in their user's horizon). Returns how many were handled."""
    for spec in reversed(list(ENTITIES.values())):
        handled = await repo.purge_tombstones(session, spec, cutoff, limit)
        if handled:
            return handled
    return 0


async def delete_finished_batches(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` status rows of finished uploads that arrived before ``cutoff``."""
    return await repo.delete_finished_batches(session, cutoff, limit)


async def open_batch_received_in(session: AsyncSession, start: datetime, end: datetime) -> bool:
    """Whether a payload partition covering ``[start, end)`` still holds an unmerged upload's payload."""
    return await repo.open_batch_received_in(session, start, end)
