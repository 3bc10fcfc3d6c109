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
from habitjobs.api.docs import install_docs
from habitjobs.api.errors import install_error_handlers
from habitjobs.api.guard import StoreGuard
from habitjobs.api.limits import BodySizeLimit
from habitjobs.api.observe import RequestObserver
from habitjobs.api.openapi import USER_ERRORS, error_responses, install_openapi
from habitjobs.api.ratelimit import RateLimitHeaders, rate_limit
from habitjobs.config import Settings
from habitjobs.dashboard import routes as dashboard
from habitjobs.habits.routes import router as habits_router
from habitjobs.observability import metrics
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
        # operationId = the route function's name (create_habit, push...): what generated clients call.
        generate_unique_id_function=lambda route: route.name,
        # Served from the package's own files instead (api/docs.py): FastAPI's load from a CDN.
        docs_url=None,
        redoc_url=None,
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
    app.add_middleware(StoreGuard, deadline_s=settings.api_deadline_s)  # 503 on a store outage
    # Outermost: the request id and the metrics see every answer, the guard's 503s included.
    metrics.set_enabled(settings.metrics)
    app.add_middleware(RequestObserver)
    # One line per domain, so adding a domain is a one-line change.
    install_docs(app)
    app.include_router(health.router)
    app.include_router(accounts_router, dependencies=limited, responses=USER_ERRORS)
    app.include_router(habits_router, dependencies=limited, responses=USER_ERRORS)
    app.include_router(sync_router, responses=USER_ERRORS)
    app.include_router(reminders_router, dependencies=limited, responses=USER_ERRORS)
    app.include_router(analytics_router, dependencies=limited, responses=USER_ERRORS)
    app.include_router(jobs.router, dependencies=limited, responses=USER_ERRORS)
    app.include_router(admin_router, responses=error_responses(401, 403, 404, 422, 503))
    dashboard.install(app)  # the operators' web pages under /admin
    install_openapi(app)
    return app
