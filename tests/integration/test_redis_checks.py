"""The worker warns loudly when Redis may evict job keys."""

import logging
from pathlib import Path

import pytest

from habitjobs.config import Settings
from habitjobs.queue.runtime import WorkerRuntime
from habitjobs.resources import Resources
from tests.support.private_redis import PrivateRedis


async def test_worker_warns_unless_noeviction(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = PrivateRedis(tmp_path, "--maxmemory-policy", "allkeys-lru")
    server.start()
    try:
        lru = Settings(**{**settings.model_dump(), "redis_url": server.url})
        resources = Resources.open(lru)
        try:
            with caplog.at_level(logging.WARNING, logger="habitjobs.queue.runtime"):
                await WorkerRuntime(resources)._check_redis()
        finally:
            await resources.aclose()
    finally:
        server.stop()
    assert "maxmemory-policy is 'allkeys-lru'" in caplog.text


async def test_no_warning_with_noeviction(resources: Resources, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="habitjobs.queue.runtime"):
        await WorkerRuntime(resources)._check_redis()
    assert "maxmemory-policy" not in caplog.text
