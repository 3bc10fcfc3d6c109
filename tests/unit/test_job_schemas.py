"""The payload contract for other producers: `habitjobs jobs schema` and docs/job-schemas.json."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict
from typer.testing import CliRunner

from habitjobs.catalog import build_registry
from habitjobs.cli.main import app
from habitjobs.queue.names import PUSH
from habitjobs.queue.registry import JobSpec, Registry
from habitjobs.queue.retry import RetryPolicy
from habitjobs.queue.schemas import job_schemas, render
from habitjobs.resources import JobContext

DOC = Path(__file__).resolve().parents[2] / "docs" / "job-schemas.json"
REGENERATE = "habitjobs jobs schema --out docs/job-schemas.json"


class Ping(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    device_ids: list[int]
    note: str | None = None


async def ping(_ctx: JobContext, _payload: Ping) -> None:
    return None


def test_each_job_type_gets_its_queue_attempts_and_payload_schema() -> None:
    registry = Registry(
        [JobSpec("demo.ping", PUSH, Ping, ping, policy=RetryPolicy(attempts=7), description="pings")]
    )
    entry = job_schemas(registry)["demo.ping"]
    assert entry["queue"] == PUSH
    assert entry["attempts"] == 7
    assert entry["description"] == "pings"
    schema = entry["schema"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["required"] == ["device_ids"]
    assert schema["additionalProperties"] is False  # extra="forbid": unknown fields fail the job
    assert schema["properties"]["device_ids"] == {
        "items": {"type": "integer"},
        "title": "Device Ids",
        "type": "array",
    }


def test_every_registered_job_type_is_exported_in_name_order() -> None:
    registry = build_registry()
    schemas = job_schemas(registry)
    assert list(schemas) == sorted(spec.name for spec in registry)


def test_docs_job_schemas_json_is_up_to_date() -> None:
    expected = render(job_schemas(build_registry()))
    current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    assert current == expected, f"{DOC.name} is out of date: run `{REGENERATE}`"


def test_the_cli_prints_the_same_document_and_writes_it_with_out(tmp_path: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(app, ["jobs", "schema"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout) == job_schemas(build_registry())

    target = tmp_path / "schemas.json"
    written = runner.invoke(app, ["jobs", "schema", "--out", str(target)])
    assert written.exit_code == 0, written.output
    assert target.read_text(encoding="utf-8") == render(job_schemas(build_registry()))
