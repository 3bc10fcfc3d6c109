"""The response-validation hook of the API tests finds what it is there to find."""

from __future__ import annotations

import json
import uuid

from tests.support.contract import contract

REMINDER = {
    "id": str(uuid.uuid4()),
    "kind": "habit",
    "habit_id": str(uuid.uuid4()),
    "routine_id": None,
    "local_time": "07:30:00",
    "days_mask": 127,
    "timezone": None,
    "enabled": True,
    "next_fire_at": "2026-03-03T06:30:00Z",
    "server_version": 3,
}
PATH = f"/v1/reminders/{uuid.uuid4()}"


def _problems(status: int, body: object, content_type: str = "application/json") -> list[str]:
    return contract().problems("GET", PATH, status, content_type, json.dumps(body).encode())


def test_a_declared_answer_passes() -> None:
    assert _problems(200, REMINDER) == []
    assert _problems(404, {"error": {"code": "not_found", "message": "reminder not found"}}) == []


def test_a_body_outside_its_schema_is_a_problem() -> None:
    assert _problems(200, {**REMINDER, "local_time": "07:30:00+02:00"})  # not a wall-clock time
    assert _problems(200, {**REMINDER, "kind": "sometimes"})  # not one of the kinds
    assert _problems(200, {k: v for k, v in REMINDER.items() if k != "enabled"})  # always sent
    assert _problems(404, {"detail": "Not Found"})  # not the error body


def test_an_undeclared_status_or_content_type_is_a_problem() -> None:
    assert _problems(409, {"error": {"code": "conflict", "message": "no"}})
    assert _problems(200, REMINDER, content_type="text/plain")


def test_paths_outside_the_document_are_left_to_the_router() -> None:
    assert contract().problems("GET", "/nowhere", 404, "application/json", b"{}") == []
