"""The application processes `habitjobs dev` runs beside the stores, and what each one is given."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from habitjobs.config import Settings
from habitjobs.devstack.errors import DevstackError

_LOOPBACK_FOR_WILDCARD = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


@dataclass(frozen=True)
class AppProcess:
    """A child running one of our own modules (``python -m habitjobs ...``)."""

    name: str
    args: list[str]
    module: str = "habitjobs"
    # Variables this process needs beyond the common ones.
    env: dict[str, str] = field(default_factory=dict)
    # The process's first output line is a JSON object announcing it: its "env" object holds variables
    # for the processes started after it (a fake provider's address, say), its "*_url" strings are shown.
    announces: bool = False

    def argv(self) -> list[str]:
        return [sys.executable, "-m", self.module, *self.args]


def client_host(settings: Settings) -> str:
    """Where a client on this machine reaches the API (a wildcard bind is reached on loopback)."""
    return _LOOPBACK_FOR_WILDCARD.get(settings.api_host, settings.api_host)


def api_base_url(settings: Settings) -> str:
    host = client_host(settings)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.api_port}"


def dev_services(settings: Settings, data_dir: Path) -> list[AppProcess]:
    """Dev-only helpers, started before the API and the worker (and stopped after them); what they
    announce reaches both. Another helper is one more ``AppProcess`` here.

    The fake push providers: local FCM and APNs servers with throwaway credentials, so that a push sent
    in dev is received there (listed at their pushes page) instead of going to Google or Apple. Not
    when real push credentials are configured.
    """
    if settings.push_fcm_credentials_file or settings.push_apns_key_file:
        return []
    try:
        if importlib.util.find_spec("habitjobs.push.fakes.__main__") is None:
            return []
    except ImportError:  # push or its dev dependencies are not there
        return []
    fakes_dir = data_dir / "push-fakes"
    return [
        AppProcess(
            "push-fakes",
            ["--dir", str(fakes_dir), "--log-file", str(fakes_dir / "pushes.jsonl")],
            module="habitjobs.push.fakes",
            announces=True,
        )
    ]


def app_processes(settings: Settings) -> list[AppProcess]:
    """The API and one worker for every queue."""
    return [
        AppProcess("api", ["api", "--host", settings.api_host, "--port", str(settings.api_port)]),
        AppProcess("worker", ["worker"]),
    ]


def child_env(settings: Settings, extra: Mapping[str, str]) -> dict[str, str]:
    """Our environment plus the effective store URLs (embedded or configured) and unbuffered output."""
    env = dict(os.environ)
    env.update(
        {
            "HABITJOBS_ENV": settings.env,
            "HABITJOBS_DATABASE_URL": settings.require_database_url(),
            "HABITJOBS_REDIS_URL": settings.require_redis_url(),
            # Lines reach the supervisor's terminal as they are written, not when a buffer fills.
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


async def read_announcement(
    name: str, stream: asyncio.StreamReader | None, timeout_s: float = 60.0
) -> dict[str, Any]:
    """The JSON object an announcing process prints as its first line."""
    if stream is None:
        raise DevstackError(f"{name} has no output to announce itself on")
    try:
        line = await asyncio.wait_for(stream.readline(), timeout_s)
    except TimeoutError:
        raise DevstackError(f"{name} did not announce itself within {timeout_s:.0f} s") from None
    try:
        announced = json.loads(line)
    except ValueError:
        announced = None
    if not isinstance(announced, dict) or not isinstance(announced.get("env", {}), dict):
        raise DevstackError(f"{name} should announce itself with a JSON object, said: {line[:300]!r}")
    return announced


async def wait_ready(
    url: str, *, exited: Callable[[], int | None], stopping: Callable[[], bool], timeout_s: float = 60.0
) -> bool:
    """Poll ``url`` until it answers 200; False if a stop was requested meanwhile.

    Raises when the process behind it exits first (``exited`` returns its status) or time runs out.
    """
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2.0) as http:
        while not stopping():
            code = exited()
            if code is not None:
                raise DevstackError(f"the API exited with status {code} before it was ready (see above)")
            try:
                if (await http.get(url)).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise DevstackError(f"{url} did not answer 200 within {timeout_s:.0f} s")
            await asyncio.sleep(0.1)
    return False
