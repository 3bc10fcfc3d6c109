"""The pure parts of offline sync: clocks, cursors, mutation checks, sequencing, the last-writer-wins fold."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from habitjobs.errors import InvalidInput
from habitjobs.sync import clocks, cursor
from habitjobs.sync.entities import ENTITIES, FROM_THE_START, DirtyMarks, completion_id
from habitjobs.sync.lww import merge_entity
from habitjobs.sync.mutations import MutationIn, Op, Rejection, StoredMutation, plan, validate, validate_all

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
LIMIT = T0 + timedelta(days=365)
USER = uuid.UUID(int=1)
OTHER = uuid.UUID(int=2)
HABIT = uuid.UUID(int=10)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def raw(
    entity: str,
    op: str,
    entity_id: object,
    seconds: float | str,
    data: dict[str, Any] | None = None,
    mid: int = 1,
) -> StoredMutation:
    """A mutation as the merge reads it back, shaped by the upload's model as it was stored."""
    stamp = seconds if isinstance(seconds, str) else at(seconds).isoformat()
    model = MutationIn(
        mutation_id=mid, entity=entity, op=op, id=str(entity_id), client_updated_at=stamp, data=data
    )
    stored: StoredMutation = model.model_dump(exclude_none=True)  # type: ignore[assignment]
    return stored


def op(
    entity: str,
    kind: str,
    entity_id: uuid.UUID,
    seconds: float,
    writer: str = "a",
    mid: int = 1,
    /,
    **values: Any,
) -> Op:
    return Op(mid, ENTITIES[entity], kind, entity_id, (at(seconds), writer), values)  # type: ignore[arg-type]


# --- clocks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-02T06:00:00Z", T0),
        ("2026-03-02T07:00:00+01:00", T0),
        ("2026-03-02T06:00:00.123456Z", T0 + timedelta(microseconds=123456)),
        ("2026-03-02T06:00:00", None),  # naive
        ("yesterday", None),
        ("", None),
        ("2026-03-02T06:00:00Z" + " " * 30, None),
        (1700000000, None),
        (None, None),
    ],
)
def test_parse_timestamp(value: object, expected: datetime | None) -> None:
    assert clocks.parse_timestamp(value) == expected


def test_clamp_and_clock_encoding() -> None:
    limit = clocks.clamp_limit(T0, 300)
    assert limit == at(300)
    assert clocks.clamp(at(10), limit) == at(10)
    assert clocks.clamp(at(10_000), limit) == limit
    clock = (at(1.5), "phone-1")
    assert clocks.decode(clocks.encode(clock)) == clock
    for bad in [None, [], ["x", "a"], [T0.isoformat()], [T0.isoformat(), 3], "x"]:
        assert clocks.decode(bad) is None
    assert (at(0), "") > clocks.ZERO


# --- cursors --------------------------------------------------------------------------------------


def test_cursor_round_trips_and_orders() -> None:
    row_id = uuid.uuid4()
    inside = cursor.Cursor(7, 2, row_id)
    assert cursor.decode(inside.encode()) == inside
    assert cursor.decode("7") == cursor.Cursor(7)
    assert cursor.Cursor(7).encode() == "7"
    assert cursor.decode(None) == cursor.decode("") == cursor.START
    assert cursor.Cursor(6) < inside < cursor.Cursor(7) < cursor.Cursor(8, 0, uuid.UUID(int=0))


@pytest.mark.parametrize(
    "bad",
    [
        "x",
        "-1",
        "1.2",
        "1.x.y",
        "1.-1." + str(uuid.UUID(int=0)),
        "1.2.3.4",
        "1..",
        "1.2147483647." + str(uuid.UUID(int=0)),
    ],
)
def test_malformed_cursors_name_the_field(bad: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        cursor.decode(bad)
    assert caught.value.field == "cursor"


# --- mutation checks ------------------------------------------------------------------------------


def _check(mutation: StoredMutation) -> Op | Rejection:
    return validate(mutation, writer="phone", clock_limit=LIMIT)


def test_a_valid_upsert_becomes_an_op_with_typed_values_and_a_clamped_clock() -> None:
    day = date(2026, 3, 2)
    checked = _check(
        raw(
            "habit_completion",
            "upsert",
            completion_id(HABIT, day),
            10,
            {"habit_id": str(HABIT), "local_date": "2026-03-02", "value": "1.5"},
        )
    )
    assert isinstance(checked, Op)
    assert checked.clock == (at(10), "phone")
    assert checked.values["habit_id"] == HABIT
    assert checked.values["local_date"] == day
    assert str(checked.values["value"]) == "1.5"
    assert checked.values["status"] == "done"
    future = _check(raw("habit", "upsert", uuid.uuid4(), 10**9, {"name": "x"}))
    assert isinstance(future, Op)
    assert future.clock == (LIMIT, "phone")


def test_a_patch_carries_only_the_fields_sent() -> None:
    checked = _check(raw("habit", "patch", uuid.uuid4(), 1, {"name": "A", "routine_id": None}))
    assert isinstance(checked, Op)
    assert checked.values == {"name": "A", "routine_id": None}


@pytest.mark.parametrize(
    ("mutation", "code", "field"),
    [
        (raw("alarm", "upsert", uuid.uuid4(), 1, {}), "unknown_entity", "entity"),
        (raw("habit", "replace", uuid.uuid4(), 1, {}), "unsupported_op", "op"),
        (raw("focus_session", "patch", uuid.uuid4(), 1, {"focus_seconds": 1}), "unsupported_op", "op"),
        (raw("habit", "upsert", "12", 1, {"name": "x"}), "invalid_id", "id"),
        (
            raw("habit", "upsert", uuid.uuid4(), "2026-03-02 06:00", {"name": "x"}),
            "invalid_timestamp",
            "client_updated_at",
        ),
        (raw("habit", "upsert", uuid.uuid4(), 1, None), "invalid_data", "data.name"),
        (
            raw("habit", "upsert", uuid.uuid4(), 1, {"name": "x", "days_mask": 128}),
            "invalid_data",
            "data.days_mask",
        ),
        (raw("habit", "upsert", uuid.uuid4(), 1, {"name": "x", "kind": "quantity"}), "invalid_data", "data"),
        (raw("habit", "patch", uuid.uuid4(), 1, {}), "invalid_data", "data"),
        (raw("habit", "patch", uuid.uuid4(), 1, {"position": None}), "invalid_data", "data.position"),
        (raw("routine", "upsert", uuid.uuid4(), 1, {"name": "x"}), "invalid_data", "data.kind"),
        (
            raw(
                "habit_completion",
                "upsert",
                uuid.uuid4(),
                1,
                {"habit_id": str(HABIT), "local_date": "2026-03-02"},
            ),
            "invalid_id",
            "id",
        ),
        (
            raw(
                "habit_completion", "upsert", uuid.uuid4(), 1, {"habit_id": str(HABIT), "local_date": "March"}
            ),
            "invalid_data",
            "data.local_date",
        ),
        (
            raw(
                "habit_completion",
                "upsert",
                uuid.uuid4(),
                1,
                {"habit_id": str(HABIT), "local_date": "2026-03-02", "value": "-1"},
            ),
            "invalid_data",
            "data.value",
        ),
        (
            raw(
                "focus_session",
                "upsert",
                uuid.uuid4(),
                1,
                {"started_at": "2026-03-02T06:00:00", "local_date": "2026-03-02"},
            ),
            "invalid_data",
            "data.started_at",
        ),
    ],
)
def test_content_problems_become_rejections(mutation: StoredMutation, code: str, field: str) -> None:
    checked = _check(mutation)
    assert isinstance(checked, Rejection)
    assert (checked.code, checked.field) == (code, field)
    assert checked.as_json()["mutation_id"] == mutation["mutation_id"]


def test_plan_skips_what_was_merged_and_stops_at_a_gap() -> None:
    batch = [raw("habit", "delete", uuid.uuid4(), 1, mid=n) for n in range(5, 9)]
    assert plan(batch, 4).pending == batch
    assert plan(batch, 4).gap is None
    assert (plan(batch, 6).already_applied, [m["mutation_id"] for m in plan(batch, 6).pending]) == (2, [7, 8])
    assert plan(batch, 8).pending == []
    assert plan(batch, 9).already_applied == 4
    assert plan(batch, 2).gap == (3, 5)


# --- dirty marks ----------------------------------------------------------------------------------


def test_dirty_marks_keep_the_earliest_date_per_habit() -> None:
    marks = DirtyMarks()
    assert not marks
    marks.streak(HABIT, date(2026, 3, 5))
    marks.streak(HABIT, date(2026, 3, 1))
    marks.streak(HABIT, date(2026, 3, 9))
    marks.day(None)
    assert marks.streaks == {HABIT: date(2026, 3, 1)}
    assert marks.days == set()
    assert marks


def test_habit_marks_only_for_history_changes() -> None:
    spec = ENTITIES["habit"]
    before = {
        "id": HABIT,
        "days_mask": 127,
        "archived_at": None,
        "deleted_at": None,
        "created_local_date": None,
    }
    changes: list[tuple[dict[str, Any], bool]] = [
        ({"days_mask": 1}, True),
        ({"archived_at": T0}, True),
        ({"deleted_at": T0}, True),
        ({}, False),
    ]
    for change, marked in changes:
        marks = DirtyMarks()
        spec.marks(marks, {**before, **change}, before)
        assert marks.streaks == ({HABIT: FROM_THE_START} if marked else {})
    fresh = DirtyMarks()
    spec.marks(fresh, before, None)
    assert not fresh


# --- the fold -------------------------------------------------------------------------------------


def _merge(
    entity: str, ops: list[Op], current: dict[uuid.UUID, dict[str, Any]] | None = None, **kw: Any
) -> Any:
    return merge_entity(ENTITIES[entity], ops, user_id=USER, version=9, current=current or {}, **kw)


def _stored(write: dict[str, Any]) -> dict[str, Any]:
    return dict(write)


FOCUS = uuid.UUID(int=20)


def _focus(kind: str, seconds: float, writer: str, mid: int, value: int = 0) -> Op:
    if kind == "delete":
        return op("focus_session", "delete", FOCUS, seconds, writer, mid)
    return op(
        "focus_session",
        "upsert",
        FOCUS,
        seconds,
        writer,
        mid,
        started_at=T0,
        ended_at=None,
        focus_seconds=value,
        status="completed",
        local_date=date(2026, 3, 2),
    )


_RECORD_OPS = [
    ("upsert", 1, "a", 1),
    ("upsert", 2, "a", 2),
    ("delete", 2, "a", 0),
    ("upsert", 2, "b", 3),
    ("delete", 3, "b", 0),
]


@pytest.mark.parametrize("length", [1, 2, 3])
def test_record_fold_equals_merging_one_operation_at_a_time(length: int) -> None:
    """Exhaustive over sequences of the sample operations: one set-based pass == row-at-a-time."""
    for combo in itertools.product(_RECORD_OPS, repeat=length):
        ops = [_focus(kind, s, w, mid, v) for mid, (kind, s, w, v) in enumerate(combo, start=1)]
        together = _merge("focus_session", ops)
        row: dict[str, Any] | None = None
        verdicts: dict[int, str] = {}
        for single in ops:
            step = _merge("focus_session", [single], {FOCUS: row} if row else None)
            if step.writes:
                row = _stored(step.writes[0])
            verdicts[single.mutation_id] = (
                "applied" if step.applied else "stale" if step.stale else "rejected"
            )
        assert (together.writes[0] if together.writes else None) == row, combo
        assert sorted(together.applied) == sorted(m for m, v in verdicts.items() if v == "applied"), combo
        assert sorted(together.stale) == sorted(m for m, v in verdicts.items() if v == "stale"), combo


def test_record_semantics() -> None:
    new = _merge("focus_session", [_focus("upsert", 5, "a", 1, value=10)])
    row = new.writes[0]
    assert (row["focus_seconds"], row["client_updated_at"], row["device_id"], row["server_version"]) == (
        10,
        at(5),
        "a",
        9,
    )
    assert row["user_id"] == USER
    assert row["deleted_at"] is None
    assert new.before == {FOCUS: None}

    stale = _merge("focus_session", [_focus("upsert", 4, "z", 2)], {FOCUS: row})
    assert stale.stale == [2]
    assert stale.writes == []
    tie_lower = _merge("focus_session", [_focus("upsert", 5, "0", 2)], {FOCUS: row})
    assert tie_lower.stale == [2]
    tie_same = _merge("focus_session", [_focus("upsert", 5, "a", 2, value=11)], {FOCUS: row})
    assert tie_same.writes[0]["focus_seconds"] == 11

    gone = _merge("focus_session", [_focus("delete", 6, "b", 2)], {FOCUS: row})
    tomb = gone.writes[0]
    assert (tomb["deleted_at"], tomb["focus_seconds"], tomb["device_id"]) == (at(6), 10, "b")
    assert gone.deleted == [FOCUS]
    revived = _merge("focus_session", [_focus("upsert", 7, "a", 3, value=12)], {FOCUS: tomb})
    assert revived.writes[0]["deleted_at"] is None
    assert revived.deleted == []

    missing = _merge("focus_session", [_focus("delete", 6, "b", 2)])
    assert [(r.code, r.mutation_id) for r in missing.rejected] == [("not_found", 2)]
    assert missing.writes == []
    created_then_deleted = _merge(
        "focus_session", [_focus("upsert", 1, "a", 1, value=3), _focus("delete", 2, "a", 2)]
    )
    assert created_then_deleted.writes[0]["deleted_at"] == at(2)
    assert created_then_deleted.writes[0]["focus_seconds"] == 3


def test_rows_of_other_users_are_never_touched() -> None:
    theirs = {**_merge("focus_session", [_focus("upsert", 1, "a", 1)]).writes[0], "user_id": OTHER}
    result = _merge(
        "focus_session", [_focus("upsert", 9, "a", 2), _focus("delete", 9, "a", 3)], {FOCUS: theirs}
    )
    assert result.writes == []
    assert [r.code for r in result.rejected] == ["id_conflict", "id_conflict"]


def _completion(seconds: float, mid: int, habit: uuid.UUID = HABIT) -> Op:
    day = date(2026, 3, 2)
    return op(
        "habit_completion",
        "upsert",
        completion_id(habit, day),
        seconds,
        "a",
        mid,
        habit_id=habit,
        local_date=day,
        status="done",
        value=None,
        duration_seconds=None,
        completed_at=None,
        tz=None,
    )


def test_completions_need_the_users_own_live_habit() -> None:
    cases = [
        ({}, "unknown_habit"),
        ({HABIT: {"user_id": OTHER, "deleted_at": None}}, "unknown_habit"),
        ({HABIT: {"user_id": USER, "deleted_at": T0}}, "habit_deleted"),
    ]
    for parents, code in cases:
        result = _merge("habit_completion", [_completion(1, 1)], parents=parents)
        assert [(r.code, r.field) for r in result.rejected] == [(code, "data.habit_id")]
        assert result.writes == []
    ok = _merge(
        "habit_completion", [_completion(1, 1)], parents={HABIT: {"user_id": USER, "deleted_at": None}}
    )
    assert ok.applied == [1]
    # Unchecking needs no live habit (the habit's deletion already tombstoned it, or will).
    unchecked = _merge(
        "habit_completion",
        [op("habit_completion", "delete", ok.writes[0]["id"], 2, "a", 2)],
        {ok.writes[0]["id"]: ok.writes[0]},
        parents={},
    )
    assert unchecked.applied == [2]


ROUTINE = uuid.UUID(int=30)


def _habit(seconds: float, writer: str, mid: int, kind: str = "upsert", **values: Any) -> Op:
    if kind == "upsert":
        values = {
            "name": "H",
            "kind": "check",
            "routine_id": None,
            "duration_seconds": None,
            "target_value": None,
            "days_mask": 127,
            "position": 0,
            "created_local_date": None,
            "archived_at": None,
            **values,
        }
    return op("habit", kind, HABIT, seconds, writer, mid, **values)


def test_settings_merge_per_field() -> None:
    created = _merge("habit", [_habit(1, "a", 1, name="Read")]).writes[0]
    assert created["field_clocks"]["name"] == clocks.encode((at(1), "a"))
    assert created["field_clocks"]["_row"] == clocks.encode((at(1), "a"))

    rename = _habit(5, "b", 2, "patch", name="Study")
    reorder = _habit(3, "a", 3, "patch", position=4)
    for order in ([rename, reorder], [reorder, rename]):
        row: dict[str, Any] = created
        for single in order:
            row = _merge("habit", [single], {HABIT: row}).writes[0]
        assert (row["name"], row["position"], row["client_updated_at"], row["device_id"]) == (
            "Study",
            4,
            at(5),
            "b",
        )

    older_rename = _merge("habit", [_habit(4, "a", 4, "patch", name="Old")], {HABIT: row})
    assert older_rename.stale == [4]
    assert older_rename.writes == []
    upsert = _merge("habit", [_habit(4, "a", 5, name="Up", position=9, days_mask=3)], {HABIT: row}).writes[0]
    assert (upsert["name"], upsert["position"], upsert["days_mask"]) == ("Study", 9, 3)


def test_settings_deletion_wins_and_keeps_the_earliest_time() -> None:
    row = _merge("habit", [_habit(1, "a", 1)]).writes[0]
    gone = _merge("habit", [_habit(9, "b", 2, "delete")], {HABIT: row})
    tomb = gone.writes[0]
    assert tomb["deleted_at"] == at(9)
    assert gone.deleted == [HABIT]
    late_edit = _merge("habit", [_habit(99, "a", 3, "patch", name="x"), _habit(99, "a", 4)], {HABIT: tomb})
    assert late_edit.stale == [3, 4]
    assert late_edit.writes == []
    earlier = _merge("habit", [_habit(5, "a", 5, "delete")], {HABIT: tomb})
    assert earlier.writes[0]["deleted_at"] == at(5)
    assert earlier.deleted == []
    later = _merge("habit", [_habit(50, "a", 6, "delete")], {HABIT: tomb})
    assert later.stale == [6]
    for kind in ("patch", "delete"):
        missing = _merge("habit", [_habit(1, "a", 7, kind, **({"name": "x"} if kind == "patch" else {}))])
        assert [r.code for r in missing.rejected] == ["not_found"]


def test_settings_rows_written_outside_sync_count_as_written_at_their_row_clock() -> None:
    synced = _merge("habit", [_habit(1, "a", 1)]).writes[0]
    api_written = {**synced, "name": "From API", "client_updated_at": at(10), "device_id": ""}
    stale = _merge("habit", [_habit(5, "a", 2, "patch", position=3)], {HABIT: api_written})
    assert stale.stale == [2]
    newer = _merge("habit", [_habit(11, "a", 3, "patch", position=3)], {HABIT: api_written}).writes[0]
    assert (newer["name"], newer["position"]) == ("From API", 3)
    assert newer["field_clocks"]["name"] == clocks.encode((at(10), ""))
    never_synced = {**api_written, "field_clocks": {}}
    assert _merge("habit", [_habit(9, "a", 4, "patch", name="x")], {HABIT: never_synced}).stale == [4]


def test_habits_may_not_point_at_another_users_routine() -> None:
    refused = _merge("habit", [_habit(1, "a", 1, routine_id=ROUTINE)], foreign={"routine_id": {ROUTINE}})
    assert [(r.code, r.field) for r in refused.rejected] == [("unknown_routine", "data.routine_id")]
    fine = _merge("habit", [_habit(1, "a", 1, routine_id=ROUTINE)], foreign={"routine_id": set()})
    assert fine.writes[0]["routine_id"] == ROUTINE


def test_every_entity_writes_its_bookkeeping_columns() -> None:
    for spec in ENTITIES.values():
        columns = set(spec.columns)
        assert {"id", "user_id", "client_updated_at", "device_id", "server_version", "deleted_at"} <= columns
        assert set(spec.fields) <= columns
        assert ("field_clocks" in columns) == (spec.merge == "settings")
        assert "created_at" not in columns


def test_completion_ids_are_the_standard_uuid5_clients_compute() -> None:
    for n in range(200):
        habit, day = uuid.uuid4(), date(2020, 1, 1) + timedelta(days=n * 13)
        assert completion_id(habit, day) == uuid.uuid5(habit, day.isoformat())


def test_checking_many_mutations_at_once_decides_exactly_like_one_at_a_time() -> None:
    day = date(2026, 3, 2)
    good_completion = {"habit_id": str(HABIT), "local_date": day.isoformat()}
    mutations = [
        raw("habit_completion", "upsert", completion_id(HABIT, day), 1, good_completion, mid=1),
        raw("habit_completion", "upsert", uuid.uuid4(), 2, good_completion, mid=2),  # wrong derived id
        raw("habit", "patch", uuid.uuid4(), 3, {"name": "A"}, mid=3),
        raw("habit", "patch", uuid.uuid4(), 4, {}, mid=4),
        raw("habit", "patch", uuid.uuid4(), 5, {"days_mask": None}, mid=5),
        raw("habit", "upsert", uuid.uuid4(), 6, {"name": "B", "kind": "duration"}, mid=6),  # fails its group
        raw("habit", "upsert", uuid.uuid4(), 7, {"name": "C"}, mid=7),
        raw("habit", "delete", "nope", 8, None, mid=8),
        raw("habit", "delete", uuid.uuid4(), "2026-03-02T06:00:00", None, mid=9),
        raw("focus_session", "delete", uuid.uuid4(), 10**9, None, mid=10),
        raw("alarm", "upsert", uuid.uuid4(), 1, {}, mid=11),
        raw("habit_completion", "patch", uuid.uuid4(), 1, {}, mid=12),
    ]
    ops, rejected = validate_all(mutations, writer="phone", clock_limit=LIMIT)
    one_by_one = [validate(m, writer="phone", clock_limit=LIMIT) for m in mutations]
    assert sorted(ops, key=lambda o: o.mutation_id) == [c for c in one_by_one if isinstance(c, Op)]
    assert sorted(rejected, key=lambda r: r.mutation_id) == [
        c for c in one_by_one if isinstance(c, Rejection)
    ]
    assert [o.mutation_id for o in sorted(ops, key=lambda o: o.mutation_id)] == [1, 3, 7, 10]
