"""An upload's values PostgreSQL cannot keep are marked per mutation, the rest is stored as sent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from habitjobs.sync.mutations import INVALID_DATA, MutationIn, Rejection, StoredMutation, validate
from habitjobs.sync.service import _payload_json
from tests.support.sync import T0


def _mutation(data: dict[str, Any], **overrides: Any) -> MutationIn:
    fields: dict[str, Any] = {
        "mutation_id": 1,
        "entity": "habit",
        "op": "upsert",
        "id": "00000000-0000-0000-0000-000000000001",
        "client_updated_at": "2026-03-02T06:00:00Z",
        "data": data,
        **overrides,
    }
    return MutationIn(**fields)


@pytest.mark.parametrize(
    ("data", "overrides", "where"),
    [
        ({"name": "a\u0000b"}, {}, "data.name"),
        ({"name": "\ud800"}, {}, "data.name"),
        ({"position": float("inf")}, {}, "data.position"),
        ({"p": [1, float("nan")]}, {}, "data.p.1"),
        ({"p": {"q": [{"r": float("-inf")}]}}, {}, "data.p.q.0.r"),
        ({"k\u0000": 1}, {}, "data"),
        ({"name": "ok"}, {"client_updated_at": "2026\u0000"}, "client_updated_at"),
    ],
)
def test_an_unstorable_value_marks_its_mutation_only(
    data: dict[str, Any], overrides: dict[str, Any], where: str
) -> None:
    good = _mutation({"name": "NaN and Infinity are fine as text"}, mutation_id=2)
    stored = json.loads(_payload_json([_mutation(data, **overrides), good]))
    assert stored[0]["unstorable"] == where
    assert "data" not in stored[0]
    assert "\u0000" not in json.dumps(stored)
    assert stored[1] == good.model_dump(exclude_none=True)
    checked = validate(stored[0], writer="w", clock_limit=T0)
    assert isinstance(checked, Rejection)
    assert (checked.code, checked.field) == (INVALID_DATA, where)


def test_a_clean_upload_is_stored_as_sent() -> None:
    mutations = [_mutation({"name": "Read", "position": 3, "routine_id": None})]
    stored: list[StoredMutation] = json.loads(_payload_json(mutations))
    assert stored == [m.model_dump(exclude_none=True) for m in mutations]
