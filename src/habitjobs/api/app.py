"""The app factory: settings in, FastAPI app out; resources opened and closed by the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from habitjobs import __version__
from habitjobs.accounts.auth import Authenticator
from habitjobs.accounts.routes import router as accounts_router
from habitjobs.admin.routes import router as admin_router
from habitjobs.analytics.routes import router as analytics_router
from habitjobs.api import health, jobs
from habitjobs.api.errors import install_error_handlers
from habitjobs.api.guard import StoreGuard
from habitjobs.api.limits import BodySizeLimit
from habitjobs.api.ratelimit import RateLimitHeaders, rate_limit
from habitjobs.config import Settings
from habitjobs.dashboard import routes as dashboard
from habitjobs.habits.routes import router as habits_router
from habitjobs.reminders.routes import router as reminders_router
from habitjobs.resources import Resources
from habitjobs.sync.routes import router as sync_router


def create_app(settings: Settings, *, resources: Resources | None = None) -> FastAPI:
    """Build the API. Pass ``resources`` to share them (tests); otherwise the app opens its own."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = resources is None
        app.state.resources = resources or Resources.open(
            settings, application_name="habitjobs-api", limits=settings.api_limits()
        )
        app.state.authenticator.start()  # the identity providers' keys, before the first request
        try:
            yield
        finally:
            await app.state.authenticator.aclose()
            if owned:
                await app.state.resources.aclose()

    app = FastAPI(
        title="habitjobs",
        version=__version__,
        description="Habit and focus app backend: answers at once, heavy work runs in background jobs.",
        lifespan=lifespan,
    )
    if resources is not None:
        app.state.resources = resources
    app.state.authenticator = Authenticator(settings)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(RateLimitHeaders)
    # Per-user rate limits on every user route (the sync router counts its own routes: its upload
    # route does not read the user from the database).
    limited = [Depends(rate_limit)]
    app.add_middleware(StoreGuard, deadline_s=settings.api_deadline_s)  # outermost: 503 on a store outage
    # One line per domain, so adding a domain is a one-line change.
    app.include_router(health.router)
    app.include_router(accounts_router, dependencies=limited)
    app.include_router(habits_router, dependencies=limited)
    app.include_router(sync_router)
    app.include_router(reminders_router, dependencies=limited)
    app.include_router(analytics_router, dependencies=limited)
    app.include_router(jobs.router, dependencies=limited)
    app.include_router(admin_router)
    dashboard.install(app)  # the operators' web pages under /admin
    return app
