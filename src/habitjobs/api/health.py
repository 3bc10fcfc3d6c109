"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
import weakref
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from habitjobs.api.deps import ResourcesDep
from habitjobs.db.engine import Database
from habitjobs.db.migrate import current_heads
from habitjobs.observability.metrics import REGISTRY
from habitjobs.resources import Resources

router = APIRouter(tags=["health"])

_PROBE_TIMEOUT_S = 2.0


class ReadyOut(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str] = Field(
        description="per store (postgres, redis): `ok` or `error: <kind>`", examples=[{"postgres": "ok"}]
    )


class AliveOut(BaseModel):
    status: Literal["ok"]


@router.get("/healthz", response_model=AliveOut)
async def healthz() -> dict[str, str]:
    """The process is alive (no dependency checked)."""
    return {"status": "ok"}


class SchemaBehind(Exception):
    """The database is not at the migration head this code needs (`habitjobs db upgrade`)."""


# Databases seen at this code's schema (migrations only go up: checked until seen once, then pinged).
_current: weakref.WeakSet[Database] = weakref.WeakSet()


async def _schema_current(resources: Resources) -> None:
    """PostgreSQL answers and has this code's schema."""
    if resources.db not in _current:
        if await resources.db.schema_revisions() != set(current_heads()):
            raise SchemaBehind()
        _current.add(resources.db)
        return
    await resources.db.ping()


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "a store does not answer"}},
)
async def readyz(resources: ResourcesDep) -> JSONResponse:
    """PostgreSQL (migrated to this code's schema) and Redis both answer; 503 otherwise (take this instance
    out of rotation)."""
    checks: dict[str, str] = {}

    async def check(name: str, probe: object) -> None:
        try:
            await asyncio.wait_for(probe, _PROBE_TIMEOUT_S)  # type: ignore[arg-type]
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"error: {type(exc).__name__}"

    await asyncio.gather(
        check("postgres", _schema_current(resources)),
        check("redis", resources.producer.redis.ping()),
    )
    ready = all(v == "ok" for v in checks.values())
    body = ReadyOut(status="ready" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus metrics of this API process (README "Operating it")."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
