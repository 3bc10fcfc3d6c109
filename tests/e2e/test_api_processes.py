"""`habitjobs api --workers N`: N processes behind one port, a dead one replaced, SIGTERM stops all."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import psutil
from sqlalchemy import func, select

from habitjobs.resources import Resources
from habitjobs.sync.models import SyncBatch
from tests.fakes.push import eventually
from tests.support.net import free_port, wait_http_ok
from tests.support.sync import Device
from tests.support.users import ApiUser
from tests.support.workers import ApiProcess

MakeUser = Callable[..., Awaitable[ApiUser]]


def _serving(api: ApiProcess) -> list[psutil.Process]:
    return psutil.Process(api.proc.pid).children()


async def _push_some(api: ApiProcess, headers: dict[str, str], n: int) -> list[int]:
    async def one() -> int:
        phone = Device()
        phone.record("habit", "upsert", uuid.uuid4(), 0, {"name": "Stretch"})
        # A connection of its own per upload: the kernel hands new connections to either process.
        async with httpx.AsyncClient(base_url=api.base_url, timeout=30) as http:
            return (await http.post("/v1/sync/push", headers=headers, json=phone.batch())).status_code

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def test_two_api_processes_serve_one_port_a_dead_one_is_replaced_and_sigterm_stops_them(
    resources: Resources, tmp_path: Path, make_user: MakeUser
) -> None:
    user = await make_user()
    api = ApiProcess(
        resources.settings, tmp_path / "api.log", free_port(), env={"HABITJOBS_API_WORKERS": "2"}
    )
    try:
        await wait_http_ok(f"{api.base_url}/readyz")
        await eventually(lambda: len(_serving(api)) == 2, timeout_s=30)
        assert await _push_some(api, user.headers, 20) == [202] * 20, api.output()

        victim = _serving(api)[0].pid
        os.kill(victim, signal.SIGKILL)
        await eventually(
            lambda: victim not in {p.pid for p in _serving(api)} and len(_serving(api)) == 2, timeout_s=30
        )
        await wait_http_ok(f"{api.base_url}/readyz")
        assert await _push_some(api, user.headers, 10) == [202] * 10, api.output()
        async with resources.db.transaction() as session:
            assert await session.scalar(select(func.count()).select_from(SyncBatch)) == 30

        survivors = _serving(api)
        api.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(api.proc.wait, 30) == 0, api.output()
        await eventually(lambda: not any(p.is_running() and p.status() != "zombie" for p in survivors))
    finally:
        api.stop()
