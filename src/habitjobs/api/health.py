"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from habitjobs.api.deps import ResourcesDep

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


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "a store does not answer"}},
)
async def readyz(resources: ResourcesDep) -> JSONResponse:
    """PostgreSQL and Redis both answer; 503 otherwise (take this instance out of rotation)."""
    checks: dict[str, str] = {}

    async def check(name: str, probe: object) -> None:
        try:
            await asyncio.wait_for(probe, _PROBE_TIMEOUT_S)  # type: ignore[arg-type]
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"error: {type(exc).__name__}"

    await asyncio.gather(
        check("postgres", resources.db.ping()),
        check("redis", resources.producer.redis.ping()),
    )
    ready = all(v == "ok" for v in checks.values())
    body = ReadyOut(status="ready" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)
