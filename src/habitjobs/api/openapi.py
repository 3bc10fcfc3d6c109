"""What the OpenAPI document declares beside the routes' own models: the one error body, the error
statuses each route answers, and the sync mutation union.

Every answer that is not a success has the body :class:`ErrorBody` (built by
:func:`habitjobs.api.errors.error_body`). Routers declare the statuses all their routes share
(``include_router(..., responses=error_responses(...))``) and each route adds its own.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from habitjobs.sync.schemas import MUTATION_VARIANTS, SCHEMA_REF, mutation_union_schema, pull_schemas

_REF = "#/components/schemas/{model}"

_DESCRIPTIONS = {
    400: "the request could not be read",
    401: "`unauthorized`: no bearer token, one that does not verify, or an account being deleted",
    403: "`forbidden`: the caller is not allowed this (administrators only)",
    404: "`not_found`: it does not exist or is not the caller's (answered the same, so ids do not leak)",
    409: "`conflict` / `limit_reached`: the request conflicts with the current state or a cap on what a "
    "user may own",
    410: "`gone`: it existed and was deleted on purpose",
    413: "`payload_too_large`: the body is over the size limit",
    422: "`invalid_input` (with `field`, and `fields` for every problem) or `malformed_json`",
    429: "`rate_limited`: too many requests of this kind; `Retry-After` says when to try again",
    503: "`unavailable`: a store does not answer; retry after `Retry-After`",
}


class ErrorFieldOut(BaseModel):
    field: str = Field(description="dotted path of the field at fault, e.g. `local_time` or `mutations.0.id`")
    message: str


class ErrorDetailOut(BaseModel):
    """``code`` is stable (clients branch on it); the other keys are for people, except ``field``.

    Some codes carry details (``retry_after_s``, ``max_bytes``, ``limit``, ``max``, ``state``...)."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(examples=["invalid_input"])
    message: str
    field: str | None = Field(default=None, description="the field at fault, when there is one")
    fields: list[ErrorFieldOut] | None = Field(
        default=None, description="every field at fault (`invalid_input` from validation)"
    )


class ErrorBody(BaseModel):
    """The body of every answer that is not a success."""

    error: ErrorDetailOut


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry declaring these error statuses with :class:`ErrorBody`."""
    return {status: {"model": ErrorBody, "description": _DESCRIPTIONS[status]} for status in statuses}


# What every route of a signed-in user may answer: no or a bad token, a rate limit, a store outage, and
# 422 for a bad parameter or body.
USER_ERRORS = error_responses(401, 422, 429, 503)


def _resolve_refs(node: Any) -> None:
    """Turn every ``{SCHEMA_REF: name}`` into a reference to that component."""
    if isinstance(node, dict):
        if SCHEMA_REF in node:
            node["$ref"] = _REF.format(model=node.pop(SCHEMA_REF))
        for value in node.values():
            _resolve_refs(value)
    elif isinstance(node, list):
        for value in node:
            _resolve_refs(value)


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _prune(document: dict[str, Any]) -> None:
    components: dict[str, Any] = document["components"]["schemas"]
    used: set[str] = set()
    todo = _refs(document["paths"])
    while todo:
        name = todo.pop()
        if name not in used:
            used.add(name)
            todo |= _refs(components.get(name))
    for name in [n for n in components if n not in used]:
        del components[name]


def _defaults_in_descriptions(document: dict[str, Any]) -> None:
    """Request schemas name their defaults in the description instead of ``default``.

    The server fills a field the client leaves out; but generators read ``default`` as "always present"
    (openapi-typescript makes such a field required), which would force every client to send it.
    """
    components: dict[str, Any] = document["components"]["schemas"]
    bodies = [
        op["requestBody"]
        for path in document["paths"].values()
        for op in path.values()
        if isinstance(op, dict) and "requestBody" in op
    ]
    seen: set[str] = set()
    todo = _refs(bodies)
    while todo:
        name = todo.pop()
        if name in seen or name not in components:
            continue
        seen.add(name)
        todo |= _refs(components[name])
        for prop in components[name].get("properties", {}).values():
            if "default" in prop:
                default = prop.pop("default")
                if default is not None:
                    note = f"default: `{json.dumps(default)}`"
                    prop["description"] = f"{prop['description']} ({note})" if "description" in prop else note


def install_openapi(app: FastAPI) -> None:
    """Generate the document once, adding the sync mutation union (the push body names it; its variants
    are described here because the upload itself validates mutations one by one in the merge)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            separate_input_output_schemas=app.separate_input_output_schemas,
        )
        components = document.setdefault("components", {}).setdefault("schemas", {})
        _, defs = models_json_schema(
            [(variant, "validation") for variant in MUTATION_VARIANTS], ref_template=_REF
        )
        extra = {**defs.get("$defs", {}), **mutation_union_schema(_REF), **pull_schemas(_REF)}
        for name, schema in extra.items():
            if components.get(name, schema) != schema:
                raise RuntimeError(f"two different schemas are named {name!r} in the OpenAPI document")
            components[name] = schema
        _resolve_refs(document)
        # Drop what nothing refers to: FastAPI's validation error shapes (every 422 is an ErrorBody) and
        # the models whose document schema is replaced (MutationIn, TableChanges).
        _prune(document)
        _defaults_in_descriptions(document)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
