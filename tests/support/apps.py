"""An API app with some settings changed, on its own resources (as another API process would have)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from habitjobs.api.app import create_app
from habitjobs.config import Settings
from habitjobs.resources import Resources


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
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
            yield http
    finally:
        await resources.aclose()
