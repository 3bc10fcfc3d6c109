"""Property-based tests of the merge, against real PostgreSQL.

Two phones edit the same small world offline (a habit, a routine, two days of completions, two focus
sessions, all created beforehand) with clocks that often tie. Their uploads are then delivered in order,
or interleaved, duplicated, re-sent under new batch ids and merged by jobs that run out of order and
twice. The properties:

- the result never depends on the delivery (convergence), and equals an independent last-writer-wins
  model (so a stale edit never overwrites a newer one; check/uncheck converge on the latest tap);
- replaying any batch changes nothing;
- a pull after pushes returns exactly the rows that changed, tombstones included.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from habitjobs.errors import RetryLater
from habitjobs.habits.models import FocusSession, Habit, HabitCompletion, Routine
from habitjobs.resources import Resources
from habitjobs.sync import service
from habitjobs.sync.entities import completion_id
from habitjobs.sync.models import SyncBatch
from tests.support.sync import T0, accept, apply, body, ts
from tests.support.users import MakeUser

DAYS = [date(2026, 3, 2), date(2026, 3, 3)]
SETUP_AT = -100
PHONES = ("dev-a", "dev-b")

# --- the world and what phones do to it -----------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """One offline edit, on logical keys (the same edits are replayed in several worlds)."""

    kind: str  # check | uncheck | focus | unfocus | habit_patch | habit_upsert | habit_delete | routine_patch
    key: int
    at: int
    values: tuple[tuple[str, Any], ...] = ()


edits = st.one_of(
    st.builds(
        Edit,
        st.just("check"),
        st.integers(0, 1),
        st.integers(0, 12),
        st.tuples(
            st.tuples(st.just("status"), st.sampled_from(["done", "skipped"])),
            st.tuples(st.just("value"), st.sampled_from(["1", "2"])),
        ),
    ),
    st.builds(Edit, st.just("uncheck"), st.integers(0, 1), st.integers(0, 12)),
    st.builds(
        Edit,
        st.just("focus"),
        st.integers(0, 1),
        st.integers(0, 12),
        st.tuples(st.tuples(st.just("focus_seconds"), st.integers(0, 3))),
    ),
    st.builds(Edit, st.just("unfocus"), st.integers(0, 1), st.integers(0, 12)),
    st.builds(
        Edit,
        st.just("habit_patch"),
        st.just(0),
        st.integers(0, 12),
        st.one_of(
            st.tuples(st.tuples(st.just("name"), st.sampled_from(["A", "B"]))),
            st.tuples(st.tuples(st.just("position"), st.integers(0, 2))),
            st.tuples(st.tuples(st.just("days_mask"), st.sampled_from([1, 127]))),
        ),
    ),
    st.builds(
        Edit,
        st.just("habit_upsert"),
        st.just(0),
        st.integers(0, 12),
        st.tuples(st.tuples(st.just("name"), st.sampled_from(["U", "V"]))),
    ),
    st.builds(
        Edit,
        st.just("routine_patch"),
        st.just(0),
        st.integers(0, 12),
        st.tuples(st.tuples(st.just("name"), st.sampled_from(["M", "N"]))),
    ),
)
# Deleting the habit ends most stories early: keep it rare.
rare_delete = st.builds(Edit, st.just("habit_delete"), st.just(0), st.integers(0, 12))
phone_history = st.lists(st.one_of(edits, edits, edits, edits, rare_delete), max_size=9)


@dataclass
class World:
    """One user's copy of the world: logical keys mapped to this user's ids."""

    user_id: uuid.UUID
    habit_id: uuid.UUID = field(default_factory=uuid.uuid4)
    routine_id: uuid.UUID = field(default_factory=uuid.uuid4)
    focus_ids: tuple[uuid.UUID, uuid.UUID] = field(default_factory=lambda: (uuid.uuid4(), uuid.uuid4()))

    def names(self) -> dict[uuid.UUID, str]:
        out = {self.habit_id: "habit", self.routine_id: "routine"}
        out.update({completion_id(self.habit_id, d): f"completion-{n}" for n, d in enumerate(DAYS)})
        out.update({f: f"focus-{n}" for n, f in enumerate(self.focus_ids)})
        return out

    def mutation(self, edit: Edit, mutation_id: int) -> dict[str, Any]:
        values = dict(edit.values)
        entity, op, entity_id, data = {
            "check": (
                "habit_completion",
                "upsert",
                completion_id(self.habit_id, DAYS[edit.key]),
                {"habit_id": str(self.habit_id), "local_date": DAYS[edit.key].isoformat(), **values},
            ),
            "uncheck": ("habit_completion", "delete", completion_id(self.habit_id, DAYS[edit.key]), None),
            "focus": (
                "focus_session",
                "upsert",
                self.focus_ids[edit.key],
                {"started_at": ts(0), "local_date": DAYS[0].isoformat(), **values},
            ),
            "unfocus": ("focus_session", "delete", self.focus_ids[edit.key], None),
            "habit_patch": ("habit", "patch", self.habit_id, values),
            "habit_upsert": ("habit", "upsert", self.habit_id, values),
            "habit_delete": ("habit", "delete", self.habit_id, None),
            "routine_patch": ("routine", "patch", self.routine_id, values),
        }[edit.kind]
        out: dict[str, Any] = {
            "mutation_id": mutation_id,
            "entity": entity,
            "op": op,
            "id": str(entity_id),
            "client_updated_at": ts(edit.at),
        }
        if data is not None:
            out["data"] = data
        return out

    def setup_upload(self) -> dict[str, Any]:
        """What existed before the phones went offline, written by a third client."""
        edits_ = [
            ("routine", "upsert", self.routine_id, {"kind": "morning", "name": "R0"}),
            ("habit", "upsert", self.habit_id, {"name": "H0", "routine_id": str(self.routine_id)}),
            *[
                (
                    "habit_completion",
                    "upsert",
                    completion_id(self.habit_id, d),
                    {"habit_id": str(self.habit_id), "local_date": d.isoformat()},
                )
                for d in DAYS
            ],
            *[
                ("focus_session", "upsert", f, {"started_at": ts(0), "local_date": DAYS[0].isoformat()})
                for f in self.focus_ids
            ],
        ]
        mutations = [
            {
                "mutation_id": n,
                "entity": e,
                "op": o,
                "id": str(i),
                "client_updated_at": ts(SETUP_AT),
                "data": d,
            }
            for n, (e, o, i, d) in enumerate(edits_, start=1)
        ]
        return body("dev-0", mutations)

    def uploads(self, phone: str, history: list[Edit], cuts: list[int]) -> list[dict[str, Any]]:
        """The phone's history as consecutive batches, cut at ``cuts``."""
        mutations = [self.mutation(e, n) for n, e in enumerate(history, start=1)]
        bounds = sorted({0, len(mutations), *(c for c in cuts if 0 < c < len(mutations))})
        return [body(phone, mutations[a:b]) for a, b in itertools.pairwise(bounds)]


async def _rows(resources: Resources, world: World) -> dict[str, dict[str, Any]]:
    """Every row of the world, by logical name, without what differs between users."""
    names = world.names()
    out: dict[str, dict[str, Any]] = {}
    async with resources.db.transaction() as session:
        models: list[type[Routine] | type[Habit] | type[HabitCompletion] | type[FocusSession]]
        models = [Routine, Habit, HabitCompletion, FocusSession]
        for model in models:
            for row in (await session.scalars(select(model).where(model.user_id == world.user_id))).all():
                values = {c.key: getattr(row, c.key) for c in model.__table__.columns}
                row_id = values["id"]
                for key in ("id", "user_id", "created_at", "received_at", "habit_id", "routine_id"):
                    values.pop(key, None)
                out[names[row_id]] = values
    return out


def _visible(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What a client ends up showing: live rows. (A tombstone's hidden fields may differ with the order;
    for the completions of a deleted habit, a tombstone and a refused upload both mean "not there".)"""
    return {
        name: {k: v for k, v in row.items() if k not in ("server_version",)}
        for name, row in rows.items()
        if row["deleted_at"] is None
    }


# --- delivering uploads ---------------------------------------------------------------------------


async def _run(resources: Resources, batch_id: uuid.UUID) -> bool:
    """Run the merge job once; False when it asked to be retried later (an earlier batch is pending)."""
    try:
        await apply(resources, batch_id)
    except RetryLater:
        return False
    return True


async def deliver_in_order(resources: Resources, user_id: uuid.UUID, uploads: list[dict[str, Any]]) -> None:
    for upload in uploads:
        assert await _run(resources, await accept(resources, user_id, upload))


async def deliver_shuffled(
    data: st.DataObject, resources: Resources, user_id: uuid.UUID, phones: list[list[dict[str, Any]]]
) -> None:
    """Each phone pushes its batches in order (it waits for each 202); everything else is arbitrary:
    the phones interleave, batches are re-sent with the same or a new id, jobs run in any order and
    some twice."""
    queues = [list(p) for p in phones]
    jobs: list[uuid.UUID] = []
    done: list[uuid.UUID] = []
    sent: list[dict[str, Any]] = []
    extras = data.draw(st.integers(0, 6), label="duplicate deliveries")
    for _ in range(500):
        moves = [f"push{n}" for n, q in enumerate(queues) if q] + (["run"] if jobs else [])
        if extras:
            moves += (["resend", "copy"] if sent else []) + (["rerun"] if done else [])
        if not moves:
            break
        move = data.draw(st.sampled_from(moves))
        if move.startswith("push"):
            upload = queues[int(move[4:])].pop(0)
            sent.append(upload)
            jobs.append(await accept(resources, user_id, upload))
            continue
        if move != "run":
            extras -= 1
        if move == "resend":
            await accept(resources, user_id, data.draw(st.sampled_from(sent)))  # same batch id: no new job
        elif move == "copy":
            copy = {**data.draw(st.sampled_from(sent)), "batch_id": str(uuid.uuid4())}
            jobs.append(await accept(resources, user_id, copy))
        else:
            pool = jobs if move == "run" else done
            batch_id = pool[data.draw(st.integers(0, len(pool) - 1))]
            if await _run(resources, batch_id) and move == "run":
                jobs.remove(batch_id)
                done.append(batch_id)
    assert not jobs
    assert not any(queues)


# --- the independent model ------------------------------------------------------------------------

_HABIT_FIELDS = {"name": "H0", "position": 0, "days_mask": 127}


def expected(histories: dict[str, list[Edit]]) -> dict[str, dict[str, Any]]:
    """Last writer wins, computed directly: per register, the edit with the greatest
    (time, writer, order) — records as whole rows, settings field by field; deleting the habit wins."""
    setup = (T0 + timedelta(seconds=SETUP_AT), "dev-0", 0)
    registers: dict[tuple[str, str], tuple[tuple[Any, ...], Any]] = {}

    def write(name: str, field_: str, clock: tuple[Any, ...], value: Any) -> None:
        if (name, field_) not in registers or clock >= registers[(name, field_)][0]:
            registers[(name, field_)] = (clock, value)

    for n in range(2):
        write(f"completion-{n}", "row", setup, {"status": "done", "value": None})
        write(f"focus-{n}", "row", setup, {"focus_seconds": 0})
    for key, value in {**_HABIT_FIELDS, "routine": True}.items():
        write("habit", key, setup, value)
    write("routine", "name", setup, "R0")
    habit_deleted = False
    for phone, history in histories.items():
        for order, edit in enumerate(history):
            clock = (T0 + timedelta(seconds=edit.at), phone, order)
            values = dict(edit.values)
            if edit.kind in ("check", "uncheck"):
                row = None if edit.kind == "uncheck" else {"status": "done", "value": None, **values}
                write(f"completion-{edit.key}", "row", clock, row)
            elif edit.kind in ("focus", "unfocus"):
                write(
                    f"focus-{edit.key}",
                    "row",
                    clock,
                    None if edit.kind == "unfocus" else {"focus_seconds": 0, **values},
                )
            elif edit.kind == "habit_patch":
                for key, value in values.items():
                    write("habit", key, clock, value)
            elif edit.kind == "habit_upsert":
                for key, value in {**_HABIT_FIELDS, "routine": False, **values}.items():
                    write("habit", key, clock, value)
            elif edit.kind == "routine_patch":
                write("routine", "name", clock, values["name"])
            else:
                habit_deleted = True
    out: dict[str, dict[str, Any]] = {}
    for n in range(2):
        for name in (f"completion-{n}", f"focus-{n}"):
            clock, row = registers[(name, "row")]
            if row is not None and not (habit_deleted and name.startswith("completion")):
                out[name] = {**row, "clock": clock[:2]}
    routine_clock, routine_name = registers[("routine", "name")]
    out["routine"] = {"name": routine_name, "clock": routine_clock[:2]}
    if not habit_deleted:
        habit = {key: registers[("habit", key)][1] for key in (*_HABIT_FIELDS, "routine")}
        habit["clock"] = max(registers[("habit", key)][0] for key in (*_HABIT_FIELDS, "routine"))[:2]
        out["habit"] = habit
    return out


def _as_model(
    world: World, visible: dict[str, dict[str, Any]], rows_with_refs: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, row in visible.items():
        clock = (row["client_updated_at"], row["device_id"])
        if name.startswith("completion"):
            out[name] = {
                "status": row["status"],
                "value": None if row["value"] is None else str(int(row["value"])),
                "clock": clock,
            }
        elif name.startswith("focus"):
            out[name] = {"focus_seconds": row["focus_seconds"], "clock": clock}
        elif name == "routine":
            out[name] = {"name": row["name"], "clock": clock}
        else:
            out[name] = {
                **{k: row[k] for k in _HABIT_FIELDS},
                "routine": rows_with_refs["habit_routine"] == world.routine_id,
                "clock": clock,
            }
    return out


async def _habit_routine(resources: Resources, world: World) -> uuid.UUID | None:
    async with resources.db.transaction() as session:
        return await session.scalar(select(Habit.routine_id).where(Habit.id == world.habit_id))


# --- the properties -------------------------------------------------------------------------------

PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PROPERTY
@given(
    a=phone_history,
    b=phone_history,
    cuts_a=st.lists(st.integers(1, 8), max_size=3),
    cuts_b=st.lists(st.integers(1, 8), max_size=3),
    data=st.data(),
)
async def test_any_delivery_converges_to_last_writer_wins(
    resources: Resources,
    make_user: MakeUser,
    a: list[Edit],
    b: list[Edit],
    cuts_a: list[int],
    cuts_b: list[int],
    data: st.DataObject,
) -> None:
    await _converges(resources, make_user, a, b, cuts_a, cuts_b, data)


# Two phones tapping the same day's check box, with clocks that often tie.
toggles = st.lists(
    st.one_of(
        st.builds(Edit, st.just("check"), st.just(0), st.integers(0, 6)),
        st.builds(Edit, st.just("uncheck"), st.just(0), st.integers(0, 6)),
    ),
    min_size=1,
    max_size=8,
)


@PROPERTY
@given(a=toggles, b=toggles, cuts_a=st.lists(st.integers(1, 7), max_size=2), data=st.data())
async def test_check_uncheck_toggles_converge(
    resources: Resources,
    make_user: MakeUser,
    a: list[Edit],
    b: list[Edit],
    cuts_a: list[int],
    data: st.DataObject,
) -> None:
    await _converges(resources, make_user, a, b, cuts_a, [], data)


async def _converges(
    resources: Resources,
    make_user: Any,
    a: list[Edit],
    b: list[Edit],
    cuts_a: list[int],
    cuts_b: list[int],
    data: st.DataObject,
) -> None:
    """Delivered in order, and shuffled with duplicates: both equal the model, so each other."""
    results = []
    for shuffled in (False, True):
        world = World((await make_user()).id)
        await deliver_in_order(resources, world.user_id, [world.setup_upload()])
        phones = [world.uploads("dev-a", a, cuts_a), world.uploads("dev-b", b, cuts_b)]
        if shuffled:
            await deliver_shuffled(data, resources, world.user_id, phones)
        else:
            await deliver_in_order(resources, world.user_id, phones[0] + phones[1])
        visible = _visible(await _rows(resources, world))
        results.append(visible)
        model = _as_model(world, visible, {"habit_routine": await _habit_routine(resources, world)})
        assert model == expected({"dev-a": a, "dev-b": b})
        async with resources.db.transaction() as session:
            statuses = set(
                (
                    await session.scalars(select(SyncBatch.status).where(SyncBatch.user_id == world.user_id))
                ).all()
            )
        assert statuses == {"applied"}
    assert results[0] == results[1]


@PROPERTY
@given(a=phone_history, cuts=st.lists(st.integers(1, 8), max_size=3), pick=st.integers(0, 10))
async def test_replaying_any_batch_changes_nothing(
    resources: Resources, make_user: MakeUser, a: list[Edit], cuts: list[int], pick: int
) -> None:
    world = World((await make_user()).id)
    uploads = [world.setup_upload(), *world.uploads("dev-a", a, cuts)]
    await deliver_in_order(resources, world.user_id, uploads)
    before = await _rows(resources, world)
    replayed = uploads[pick % len(uploads)]
    batch_id = uuid.UUID(replayed["batch_id"])
    assert await _run(resources, batch_id)  # the same job again
    await accept(resources, world.user_id, replayed)  # the same upload again: no new job
    copy = await accept(resources, world.user_id, {**replayed, "batch_id": str(uuid.uuid4())})
    assert await _run(resources, copy)  # the same mutations under a new batch id
    assert await _rows(resources, world) == before
    async with resources.db.transaction() as session:
        status = await service.get_batch(session, world.user_id, copy)
    assert (status.result["applied"], status.result["already_applied"]) == (0, len(replayed["mutations"]))


async def _pull_all(
    client: Any, user: Any, cursor: str | None, limit: int
) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, list[str]], str]:
    upserted: dict[str, dict[str, dict[str, Any]]] = {}
    deleted: dict[str, list[str]] = {}
    for _ in range(100):
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/sync/pull", headers=user.headers, params=params)).json()
        assert page["reset_required"] is False
        for table, changes in page["changes"].items():
            for row in changes["upserted"]:
                assert row["id"] not in upserted.setdefault(table, {}), "a row came twice"
                upserted[table][row["id"]] = row
            deleted.setdefault(table, []).extend(changes["deleted"])
        cursor = page["cursor"]
        if not page["has_more"]:
            return upserted, deleted, cursor
    pytest.fail("pull never ended")


@PROPERTY
@given(a=phone_history, b=phone_history, limit=st.integers(1, 4))
async def test_pull_after_push_returns_exactly_the_changes(
    client: httpx.AsyncClient,
    resources: Resources,
    make_user: MakeUser,
    a: list[Edit],
    b: list[Edit],
    limit: int,
) -> None:
    user = await make_user()
    world = World(user.id)
    await deliver_in_order(resources, user.id, [world.setup_upload(), *world.uploads("dev-a", a, [])])
    replica, _, cursor = await _pull_all(client, user, None, limit)
    before = await _rows(resources, world)

    await deliver_in_order(resources, user.id, world.uploads("dev-b", b, [4]))
    upserted, deleted, _ = await _pull_all(client, user, cursor, limit)

    after = await _rows(resources, world)
    names = world.names()
    changed = {n for n in after if after[n] != before.get(n)}
    pulled = {names[uuid.UUID(i)] for rows in upserted.values() for i in rows}
    pulled_deleted = {names[uuid.UUID(i)] for ids in deleted.values() for i in ids}
    assert pulled | pulled_deleted == changed
    assert not pulled & pulled_deleted
    assert pulled_deleted == {n for n in changed if after[n]["deleted_at"] is not None}
    # The replica from the first pull, brought forward by the delta, equals a fresh first pull.
    for table, rows in upserted.items():
        replica.setdefault(table, {}).update(rows)
    for table, ids in deleted.items():
        for i in ids:
            replica.get(table, {}).pop(i, None)
    fresh, fresh_deleted, _ = await _pull_all(client, user, None, 1000)
    assert {t: r for t, r in replica.items() if r} == {t: r for t, r in fresh.items() if r}
    assert all(not ids for ids in fresh_deleted.values())
