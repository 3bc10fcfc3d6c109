"""Running the migrations from code (the CLI, `habitjobs dev`, the test suite)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from alembic import command
from alembic.config import Config

from habitjobs.db.engine import normalize_url

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a '%' in a password must be doubled.
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Blocking: call from a thread when an event loop is running (the env runs its own loop)."""
    command.upgrade(alembic_config(url), revision)


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the server could not be reached or is not accepting connections yet."""
    import asyncpg

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(
            seen,
            OSError
            | asyncpg.CannotConnectNowError
            | asyncpg.TooManyConnectionsError
            | asyncpg.ConnectionDoesNotExistError
            | asyncpg.InvalidCatalogNameError,
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def upgrade_when_reachable(url: str, revision: str = "head", *, wait_s: float = 0.0) -> None:
    """``upgrade``, retried every second while PostgreSQL cannot be reached, for up to ``wait_s``: a fresh
    server (a container's first start) refuses or resets connections for a while."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            upgrade(url, revision)
            return
        except Exception as exc:
            if not unreachable(exc) or time.monotonic() >= deadline:
                raise
            log.warning("PostgreSQL not reachable yet (%s); retrying", type(exc).__name__)
            time.sleep(1.0)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def current_heads() -> tuple[str, ...]:
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return tuple(ScriptDirectory.from_config(config).get_heads())
