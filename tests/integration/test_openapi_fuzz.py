"""schemathesis over the app's own OpenAPI document: real HTTP, real Redis and PostgreSQL, a real user.

Every operation gets a fixed number of generated requests from a fixed seed (the same cases each run);
every answer must be no server error, a declared status, a declared content type and match its schema.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import CheckFunction
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from habitjobs.config import Settings
from habitjobs.resources import Resources
from tests.support.apps import serve_api
from tests.support.users import ApiUser

MakeUser = Callable[..., Awaitable[ApiUser]]
Operation = schemathesis.APIOperation[Any, Any, Any, Any]
SEED = 20261202
CASES_PER_OPERATION = 8
CHECKS: list[CheckFunction] = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Deleting the account locks it (every later request answers 401): it goes last.
LAST = "DELETE /v1/me"


def _fuzz(base_url: str, token: str) -> tuple[int, list[str]]:
    """(cases run, failures): each failure names the operation, the check and the request."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations: list[Operation] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    operations.sort(key=lambda op: op.label == LAST)
    failures: list[str] = []
    cases = 0
    for operation in operations:

        @hypothesis.seed(SEED)
        @hypothesis.settings(
            max_examples=CASES_PER_OPERATION,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis.given(case=operation.as_strategy())
        def run(case: schemathesis.Case[Operation]) -> None:
            nonlocal cases
            cases += 1
            response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            try:
                case.validate_response(response, checks=CHECKS)
            except (FailureGroup, AssertionError) as exc:  # record it and go on (no shrinking)
                failures.append(f"{case.operation.label}: {exc}\n  curl: {case.as_curl_command()}")

        run()
    return cases, failures


async def test_schemathesis_finds_no_failure(
    settings: Settings,
    resources: Resources,
    make_user: MakeUser,
) -> None:
    user = await make_user(admin=True)
    async with serve_api(settings, resources) as base_url:
        cases, failures = await asyncio.to_thread(_fuzz, base_url, user.token)
    assert cases >= 200
    assert failures == [], "\n".join(failures)
