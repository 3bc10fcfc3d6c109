"""Which tables a user's deletion erases, and in what order, from the schema's references alone."""

from habitjobs.accounts.erase_sql import ForeignKey, plan_erasure


def _fk(source: str, column: str, target: str, action: str = "c", target_column: str = "id") -> ForeignKey:
    return ForeignKey(source, target, action, (column,), (target_column,))


def test_owning_references_are_erased_children_first_and_cleared_ones_are_left() -> None:
    fks = [
        _fk("habits", "user_id", "users"),
        _fk("completions", "user_id", "users"),
        _fk("completions", "habit_id", "habits"),
        _fk("devices", "user_id", "users"),
        _fk("deliveries", "user_id", "users"),
        _fk("deliveries", "device_id", "devices"),
        _fk("deletions", "user_id", "users", action="n"),  # SET NULL: mentions the user, is not theirs
        _fk("runs", "last_user_id", "users", action="n"),
    ]
    plan = plan_erasure(fks, ["habits", "completions", "devices", "deliveries", "deletions", "outbox"])
    order = [t.table for t in plan]
    assert set(order) == {"habits", "completions", "devices", "deliveries", "outbox"}
    assert order.index("completions") < order.index("habits")
    assert order.index("deliveries") < order.index("devices")
    outbox = next(t for t in plan if t.table == "outbox")  # a user_id without a reference
    assert (outbox.condition, outbox.cascades) == ('t0."user_id" = :user_id', False)
    assert all(t.cascades for t in plan if t.table != "outbox")


def test_a_table_without_a_user_column_is_reached_through_its_references() -> None:
    fks = [
        _fk("devices", "user_id", "users"),
        _fk("device_notes", "device_id", "devices"),
        _fk("note_tags", "note_id", "device_notes", action="a"),  # no action: must go before its note
        _fk("audit", "device_id", "devices", action="n"),  # cleared, not erased
    ]
    plan = plan_erasure(fks, ["devices"])
    order = [t.table for t in plan]
    assert order == ["note_tags", "device_notes", "devices"]
    notes = plan[1]
    assert notes.condition == (
        'EXISTS (SELECT 1 FROM "devices" t1 WHERE t1."id" = t0."device_id" AND (t1."user_id" = :user_id))'
    )
    assert notes.cascades
    tags = plan[0]
    assert "t2" in tags.condition
    assert not tags.cascades  # NO ACTION: deleting the user would fail on them, so they are swept


def test_names_are_quoted_and_cycles_do_not_stop_the_plan() -> None:
    fks = [
        _fk('we"ird', "user_id", "users"),
        _fk("a", "user_id", "users"),
        _fk("b", "user_id", "users"),
        _fk("a", "b_id", "b"),
        _fk("b", "a_id", "a"),
        _fk("a", "parent_id", "a"),  # self-reference
    ]
    plan = plan_erasure(fks, [])
    assert sorted(t.table for t in plan) == ["a", "b", 'we"ird']
    assert plan_erasure([], ["users"]) == []
