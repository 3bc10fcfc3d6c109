"""Every answer the API tests get, checked against the app's own OpenAPI document.

:data:`CHECKED` is the ``event_hooks`` of the tests' API clients: each response of a documented operation
must have a documented status, a documented content type, and a body that the JSON Schema validator
(jsonschema-rs, formats included) accepts against the declared schema. A mismatch fails the request, so
the test that made it fails.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema_rs

from habitjobs.api.app import create_app
from habitjobs.config import Settings

_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# 500 is never declared: a test that gets one fails on its own assertions, with the traceback logged.
_NOT_CHECKED = {500}


@dataclass(frozen=True)
class _Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    responses: dict[str, Any]


class ResponseContract:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.operations: list[_Operation] = []
        for template, item in document["paths"].items():
            regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            for method, operation in item.items():
                self.operations.append(
                    _Operation(method.upper(), template, re.compile(f"^{regex}$"), operation["responses"])
                )
        # Literal paths before templated ones (/v1/me/deletion before /v1/me/{id}, were there such).
        self.operations.sort(key=lambda op: op.template.count("{"))

    def operation(self, method: str, path: str) -> _Operation | None:
        for op in self.operations:
            if op.method == method and op.pattern.match(path):
                return op
        return None

    @functools.cache  # noqa: B019 - one contract per run
    def validator(self, schema_json: str) -> jsonschema_rs.Validator:
        root = {"$schema": _DIALECT, "components": self.document["components"], **json.loads(schema_json)}
        return jsonschema_rs.validator_for(root, validate_formats=True)

    def problems(self, method: str, path: str, status: int, content_type: str, body: bytes) -> list[str]:
        """What is wrong with this answer (nothing for an undocumented path: the router's own 404/405)."""
        op = self.operation(method, path)
        if op is None or status in _NOT_CHECKED:
            return []
        declared = op.responses.get(str(status)) or op.responses.get(f"{status // 100}XX")
        declared = declared or op.responses.get("default")
        if declared is None:
            return [f"status {status} is not declared (declared: {', '.join(op.responses)})"]
        content = declared.get("content")
        if not content:
            return [] if not body else [f"status {status} declares no body, got {body[:200]!r}"]
        media = content_type.split(";")[0].strip()
        if media not in content:
            return [f"content type {media!r} is not declared (declared: {', '.join(content)})"]
        schema = content[media].get("schema")
        if schema is None or media != "application/json":
            return []
        try:
            value = json.loads(body)
        except ValueError as exc:
            return [f"the body is not JSON: {exc}"]
        validator = self.validator(json.dumps(schema, sort_keys=True))
        return [
            f"{'/'.join(map(str, e.instance_path)) or '(body)'}: {e.message}"
            for e in validator.iter_errors(value)
        ]


@functools.cache
def contract() -> ResponseContract:
    """The document of the app as every test builds it (routes do not depend on settings)."""
    return ResponseContract(create_app(Settings(env="test")).openapi())


async def check_response(response: httpx.Response) -> None:
    await response.aread()
    request = response.request
    problems = contract().problems(
        request.method,
        request.url.path,
        response.status_code,
        response.headers.get("content-type", ""),
        response.content,
    )
    if problems:
        raise AssertionError(
            f"{request.method} {request.url.path} answered {response.status_code}, which its OpenAPI "
            f"declaration does not allow:\n  " + "\n  ".join(problems) + f"\n  body: {response.text[:500]}"
        )


ResponseHook = Callable[[httpx.Response], Awaitable[None]]
CHECKED: dict[str, list[ResponseHook]] = {"response": [check_response]}
"""``event_hooks`` for an ``httpx.AsyncClient`` of the API."""
