"""Planning partition maintenance (pure): which partitions to make and drop, including after the
partition width was changed (no period left without a partition, none overlapping)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from habitjobs.db.partitions import Partition, PartitionedTable, plan

T0 = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
HOURLY = PartitionedTable("t", "at", timedelta(hours=1))
MINUTES = PartitionedTable("t", "at", timedelta(minutes=15))


def _apply(existing: list[Partition], table: PartitionedTable, now: datetime) -> list[Partition]:
    steps = plan(table, existing, now=now, ahead=timedelta(hours=2), keep=timedelta(hours=1))
    dropped = {s.partition.name for s in steps if s.kind == "drop"}
    made = [s.partition for s in steps if s.kind == "create"]
    return sorted([p for p in existing if p.name not in dropped] + made, key=lambda p: p.start)


def _contiguous(parts: list[Partition]) -> bool:
    return all(a.end == b.start for a, b in itertools.pairwise(parts))


def test_names_carry_the_start_and_are_read_back() -> None:
    name = HOURLY.partition_name(datetime(2026, 3, 2, 12, tzinfo=UTC))
    assert name == "t_p202603021200"
    assert HOURLY.start_of(name) == datetime(2026, 3, 2, 12, tzinfo=UTC)
    assert HOURLY.start_of("t_default") is None
    assert HOURLY.start_of("other_p202603021200") is None


def test_partitions_from_the_current_period_to_the_horizon() -> None:
    parts = _apply([], HOURLY, T0)
    assert [p.start.hour for p in parts] == [12, 13, 14]
    assert _contiguous(parts)


def test_a_narrower_width_continues_where_the_wide_partitions_end() -> None:
    parts = _apply(_apply([], HOURLY, T0), MINUTES, T0 + timedelta(hours=2))
    assert _contiguous(parts)
    assert parts[-1].end >= T0 + timedelta(hours=4)
    assert {p.end - p.start for p in parts if p.start >= datetime(2026, 3, 2, 15, tzinfo=UTC)} == {
        timedelta(minutes=15)
    }


def test_a_wider_width_fills_the_rest_of_its_first_period_without_a_gap() -> None:
    narrow = _apply([], MINUTES, T0)
    parts = _apply(narrow, HOURLY, T0 + timedelta(minutes=10))
    assert _contiguous(parts)
    assert parts[-1].end >= T0 + timedelta(minutes=10, hours=2)
