"""The contract for other producers: every job type's queue, attempts and payload as JSON Schema.

A NestJS service that enqueues our jobs builds its payloads from this (``habitjobs jobs schema``,
kept in ``docs/job-schemas.json``). Pure: reads the registry, no I/O.
"""

from __future__ import annotations

import json
from typing import Any

from habitjobs.queue.registry import Registry

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def job_schemas(registry: Registry) -> dict[str, dict[str, Any]]:
    """``{job name: {queue, description, attempts, schema}}`` for every job type, sorted by name.

    ``schema`` is what the worker validates a job's data against (pydantic's validation mode), so a
    payload that fails it fails the job at once, without retries.
    """
    return {
        spec.name: {
            "queue": spec.queue,
            "description": spec.description,
            "attempts": spec.policy.attempts,
            "schema": {"$schema": JSON_SCHEMA_DIALECT, **spec.payload.model_json_schema(mode="validation")},
        }
        for spec in sorted(registry, key=lambda s: s.name)
    }


def render(schemas: dict[str, dict[str, Any]]) -> str:
    """The file form: stable, two-space indented, one trailing newline (diff-friendly)."""
    return json.dumps(schemas, indent=2, ensure_ascii=False) + "\n"
