"""Fixtures: a migrated private database per run, a Redis prefix per test, resources, an API client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from habitjobs.accounts.auth import mint_token
from habitjobs.accounts.repository import get_or_create_user, update_user
from habitjobs.api.app import create_app
from habitjobs.clock import SystemClock
from habitjobs.config import Settings
from habitjobs.db.all_models import Base
from habitjobs.resources import Resources
from tests.support import stores
from tests.support.contract import CHECKED
from tests.support.users import ApiUser, MakeUser


@pytest.fixture(scope="session")
def redis_url() -> str:
    return stores.base_redis_url()


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    admin = stores.base_database_url()
    url = await stores.create_test_database(admin)
    yield url
    await stores.drop_test_database(admin, url)


@pytest.fixture
def prefix(redis_url: str) -> str:
    return stores.new_prefix()


@pytest.fixture
async def clean_redis(redis_url: str, prefix: str) -> AsyncIterator[None]:
    yield
    await stores.delete_prefix(redis_url, prefix)


@pytest.fixture
async def clean_db(database_url: str) -> AsyncIterator[None]:
    yield
    await stores.truncate_all(database_url, [t.name for t in Base.metadata.sorted_tables])


@pytest.fixture
def settings(database_url: str, redis_url: str, prefix: str, clean_redis: None, clean_db: None) -> Settings:
    """Settings for one test: its own key prefix, short lock/stall times so recovery tests are quick."""
    return Settings(
        env="test",
        database_url=database_url,
        redis_url=redis_url,
        queue_prefix=prefix,
        lock_duration_ms=2_000,
        stalled_interval_ms=1_000,
        shutdown_grace_s=10,
        outbox_relay_grace_s=0,
        db_pool_size=5,
    )


@pytest.fixture
async def resources(settings: Settings) -> AsyncIterator[Resources]:
    res = Resources.open(settings, application_name="habitjobs-test")
    try:
        yield res
    finally:
        await res.aclose()


@pytest.fixture
async def job_resources(settings: Settings) -> AsyncIterator[Resources]:
    """Resources whose registry also has the test job types (``tests.support.testjobs``)."""
    with_test_jobs = Settings(**{**settings.model_dump(), "extra_job_modules": "tests.support.testjobs"})
    res = Resources.open(with_test_jobs, application_name="habitjobs-test")
    try:
        yield res
    finally:
        await res.aclose()


@pytest.fixture
async def client(settings: Settings, resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, resources=resources)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api.test", event_hooks=CHECKED
    ) as http:
        yield http


@pytest.fixture
def make_user(resources: Resources) -> MakeUser:
    async def make(email: str | None = None, *, admin: bool = False) -> ApiUser:
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        async with resources.db.transaction() as session:
            user = await get_or_create_user(session, email)
            if admin:
                await update_user(session, user.id, {"is_admin": True})
        # Tokens are checked against the real time, whatever clock the test gives the resources.
        token = mint_token(resources.settings, user.id, now=SystemClock().now())
        return ApiUser(id=user.id, email=email, token=token)

    return make
