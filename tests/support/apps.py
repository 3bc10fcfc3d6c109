"""An API app with some settings changed, on its own resources (as another API process would have)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn

from habitjobs.api.app import create_app
from habitjobs.api.server import uvicorn_config
from habitjobs.config import Settings
from habitjobs.resources import Resources
from tests.support.contract import CHECKED
from tests.support.net import free_port, wait_http_ok


def changed(settings: Settings, **overrides: Any) -> Settings:
    return Settings(**{**settings.model_dump(), **overrides})


@asynccontextmanager
async def open_api(settings: Settings, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of an app built from ``settings`` with ``overrides``."""
    app_settings = changed(settings, **overrides)
    resources = Resources.open(app_settings, application_name="habitjobs-test")
    app = create_app(app_settings, resources=resources)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api.test", event_hooks=CHECKED
        ) as http:
            yield http
    finally:
        await resources.aclose()


@asynccontextmanager
async def serve_api(settings: Settings, resources: Resources) -> AsyncIterator[str]:
    """The app served over real HTTP by uvicorn on a free port, in this event loop; yields its base URL.

    Blocking clients (schemathesis, a generated client) must run in a thread meanwhile."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn_config(settings, create_app(settings, resources=resources), host="127.0.0.1", port=port)
    )
    task = asyncio.create_task(server.serve())
    try:
        await wait_http_ok(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
