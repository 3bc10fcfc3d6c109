"""Helpers for the push tests: fake providers per module, settings that point at them, devices, tokens."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from habitjobs.accounts.repository import upsert_device
from habitjobs.config import Settings
from habitjobs.push import repository as push_repo
from habitjobs.push import service
from habitjobs.push.fakes import Behaviour, RunningFakes, running_fakes
from habitjobs.push.models import PushDelivery
from habitjobs.push.schemas import Notification
from habitjobs.resources import Resources


def fakes_for_module(tmp_path_factory: pytest.TempPathFactory, **behaviour: Any) -> Iterator[RunningFakes]:
    """Body of a module-scoped fixture: fake providers running for the module's tests."""
    with running_fakes(tmp_path_factory.mktemp("push-fakes"), behaviour=Behaviour(**behaviour)) as fakes:
        yield fakes


def settings_for(settings: Settings, fakes: RunningFakes, **overrides: Any) -> Settings:
    return settings.model_copy(update={**fakes.settings_overrides(), **overrides})


def fake_settings(fakes: RunningFakes, **overrides: Any) -> Settings:
    """Settings for sender-only tests (no database or Redis)."""
    return Settings(env="test", **{**fakes.settings_overrides(), **overrides})


def token(kind: str = "ok") -> str:
    """A device token whose prefix picks the fakes' answer (see habitjobs.push.fakes.outcomes)."""
    return f"{kind}-{uuid.uuid4().hex}"


async def add_device(
    resources: Resources,
    user_id: uuid.UUID,
    push_token: str,
    *,
    provider: str = "apns",
    platform: str | None = None,
    apns_env: str | None = "production",
) -> uuid.UUID:
    device_id = uuid.uuid4()
    values = {
        "platform": platform or ("ios" if provider == "apns" else "android"),
        "provider": provider,
        "push_token": push_token,
        "apns_env": apns_env if provider == "apns" else None,
        "app_version": "1.0",
    }
    async with resources.db.transaction() as session:
        await upsert_device(session, user_id, device_id, values)
    return device_id


async def notify(
    resources: Resources,
    user_id: uuid.UUID,
    *,
    key: str | None = None,
    not_after: datetime | None = None,
    notification: Notification | None = None,
    stage: bool = True,
) -> list[uuid.UUID]:
    """Create deliveries for all the user's devices (and stage their job, like a reminder tick would)."""
    async with resources.db.transaction() as session:
        ids = await service.create_deliveries(
            session,
            user_id,
            notification or Notification.habit_reminder(uuid.uuid4(), "Read"),
            dedupe_key=key or f"test:{uuid.uuid4()}",
            not_after=not_after or resources.clock.now() + timedelta(hours=1),
        )
        if stage and ids:
            await service.stage_send(session, resources.outbox, ids)
    return ids


async def deliveries(resources: Resources, ids: list[uuid.UUID]) -> dict[uuid.UUID, PushDelivery]:
    async with resources.db.transaction() as session:
        return {d.id: d for d in await push_repo.get_deliveries(session, ids)}


async def eventually(check: Callable[[], Awaitable[bool] | bool], *, timeout_s: float = 10.0) -> None:
    """Poll ``check`` until it is true; fail with a timeout instead of hanging."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition still false after {timeout_s}s")
        await asyncio.sleep(0.02)
