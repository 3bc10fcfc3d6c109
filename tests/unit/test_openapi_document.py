"""What the OpenAPI document promises generated clients (README: Generated clients)."""

from __future__ import annotations

import json
from typing import Any

from habitjobs.api.app import create_app
from habitjobs.config import Settings

DOC: dict[str, Any] = create_app(Settings(env="test")).openapi()
SCHEMAS: dict[str, Any] = DOC["components"]["schemas"]
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, item in DOC["paths"].items() for m, op in item.items()]


def test_every_error_status_has_the_one_error_body() -> None:
    for method, path, op in _operations():
        for status, response in op["responses"].items():
            if status.startswith("4") or (status == "503" and path != "/readyz"):
                schema = response["content"]["application/json"]["schema"]
                assert schema == ERROR_REF, (method, path, status)
    assert "HTTPValidationError" not in SCHEMAS
    assert "ValidationError" not in SCHEMAS


def test_user_routes_declare_what_they_answer() -> None:
    for method, path, op in _operations():
        declared = set(op["responses"])
        if path.startswith("/v1/"):
            assert {"401", "422", "429", "503"} <= declared, (method, path)
        if "{" in path and path.startswith(("/v1/", "/admin/")):
            assert "404" in declared, (method, path)
        if "requestBody" in op:
            assert "413" in declared, (method, path)
        if path.startswith("/admin/"):
            assert "403" in declared, (method, path)
    ids = [op["operationId"] for _, _, op in _operations()]
    assert len(ids) == len(set(ids))


def test_no_time_format_and_no_untyped_output_field() -> None:
    text = json.dumps(DOC)
    assert '"format": "time"' not in text
    for name in ("DailyStatsOut", "WeeklyStatsOut", "WeekChange", "JobOut", "ReadyOut", "PullOut"):
        for field, schema in SCHEMAS[name]["properties"].items():
            assert schema not in ({}, {"title": field.replace("_", " ").title()}), (name, field)
    assert SCHEMAS["WeeklyStatsOut"]["properties"]["change"]["anyOf"][0] == {
        "$ref": "#/components/schemas/WeekChange"
    }
    time_of_day = SCHEMAS["ReminderOut"]["properties"]["local_time"]
    assert time_of_day["type"] == "string"
    assert "pattern" in time_of_day


def test_outputs_are_required_enums_and_inputs_keep_defaults_optional() -> None:
    assert {"applied", "rejected", "status"} <= set(SCHEMAS["BatchOut"]["required"])
    assert SCHEMAS["BatchOut"]["properties"]["status"]["enum"] == [
        "queued",
        "processing",
        "applied",
        "failed",
    ]
    for model, field in (("HabitOut", "kind"), ("JobOut", "state"), ("DeviceOut", "platform")):
        assert "enum" in SCHEMAS[model]["properties"][field], (model, field)
    for model, fields in (("HabitIn", {"days_mask", "position"}), ("ReminderIn", {"enabled"})):
        assert not fields & set(SCHEMAS[model].get("required", [])), model
        for field in fields:
            assert "default" not in SCHEMAS[model]["properties"][field]


def test_sync_mutations_are_a_union_per_entity_and_op() -> None:
    items = SCHEMAS["PushIn"]["properties"]["mutations"]["items"]
    assert items == {"$ref": "#/components/schemas/SyncMutation"}
    variants = {
        ref["$ref"].rsplit("/", 1)[1]
        for entity in SCHEMAS["SyncMutation"]["oneOf"]
        for ref in SCHEMAS[entity["$ref"].rsplit("/", 1)[1]]["oneOf"]
    }
    assert {"HabitUpsertMutation", "HabitPatchMutation", "HabitCompletionUpsertMutation"} <= variants
    habit = SCHEMAS["HabitUpsertMutation"]["properties"]
    assert habit["entity"]["const"] == "habit"
    assert habit["op"]["const"] == "upsert"
    assert habit["id"]["format"] == "uuid"
    assert habit["client_updated_at"]["format"] == "date-time"
    assert habit["data"]["$ref"] == "#/components/schemas/HabitData"
