"""One error shape for every answer that is not a success:

``{"error": {"code": "...", "message": "...", "field": "..." (when one field is at fault), "fields": [...]}}``
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from habitjobs.errors import HabitjobsError, InvalidInput, RateLimited, Unauthorized

log = logging.getLogger(__name__)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **{k: v for k, v in extra.items() if v is not None}}}


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HabitjobsError)
    async def _domain(_request: Request, exc: HabitjobsError) -> JSONResponse:
        extra: dict[str, Any] = dict(exc.details)
        if isinstance(exc, InvalidInput) and exc.field:
            extra["field"] = exc.field
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        if isinstance(exc, RateLimited):
            headers = {"Retry-After": str(exc.retry_after_s)}
        return JSONResponse(
            error_body(exc.code, exc.message, **extra), status_code=exc.http_status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = []
        for error in exc.errors():
            loc = error.get("loc", ())
            if error.get("type") == "json_invalid":
                return JSONResponse(
                    error_body(
                        "malformed_json", f"the body is not valid JSON: {error.get('msg', '')}".strip()
                    ),
                    status_code=422,
                )
            fields.append({"field": _field_of(loc), "message": str(error.get("msg", "invalid"))})
        first = fields[0] if fields else {"field": "body", "message": "invalid"}
        return JSONResponse(
            error_body(
                "invalid_input", f"{first['field']}: {first['message']}", field=first["field"], fields=fields
            ),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {
            404: "not_found",
            405: "method_not_allowed",
            401: "unauthorized",
            413: "payload_too_large",
        }.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    # A store outage never gets here: habitjobs.api.guard answers it with 503 (this handler's answer is
    # followed by the server logging the traceback and closing the connection — right for a bug only).
    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "internal error"), status_code=500)
