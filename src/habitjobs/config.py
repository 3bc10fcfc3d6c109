"""Settings: read once from the environment (prefix ``HABITJOBS_``), then passed down explicitly."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Env = Literal["dev", "test", "prod"]

# Secrets that people leave in place from examples; refused outside dev and test.
_PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "change_me", "secret", "placeholder", "jwt-secret", "dev", "test", "xxx"}
)
_MIN_SECRET_CHARS = 32
# Used only when env is dev or test and no secret was given.
DEV_JWT_SECRET = "habitjobs-dev-only-secret-do-not-use-in-production"  # noqa: S105


class ConfigError(ValueError):
    """The configuration cannot run: the message says which setting to fix."""


class Settings(BaseSettings):
    """Every knob of the system. Durations carry their unit in the name."""

    model_config = SettingsConfigDict(env_prefix="HABITJOBS_", extra="ignore", frozen=True)

    env: Env = "prod"
    log_level: str = "INFO"

    # Stores. None means "not configured": `habitjobs dev` fills them in (embedded servers), every other
    # command refuses to start without them.
    database_url: str | None = None
    analytics_database_url: str | None = None
    db_pool_size: int = Field(default=10, ge=1)
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)
    redis_url: str | None = None

    # Queues. The prefix namespaces every BullMQ key; Node producers must use the same one.
    queue_prefix: str = "habitjobs"
    lock_duration_ms: int = Field(default=15_000, ge=1_000)
    stalled_interval_ms: int = Field(default=5_000, ge=500)
    max_stalled_count: int = Field(default=3, ge=1)
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    blocked_loop_warn_ms: int = Field(default=1_000, ge=10)
    keep_completed_age_s: int = 24 * 3600
    keep_completed_count: int = 10_000
    keep_failed_age_s: int = 14 * 24 * 3600
    keep_failed_count: int = 50_000
    outbox_relay_every_ms: int = Field(default=10_000, ge=1_000)
    outbox_relay_grace_s: float = Field(default=5.0, ge=0)
    outbox_keep_s: int = 7 * 24 * 3600
    # Modules whose ``JOBS`` list is added to the registry (comma-separated import paths): job types an
    # embedding application brings, or the test suite's own.
    extra_job_modules: str = ""

    # API.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_max_body_bytes: int = Field(default=2_000_000, ge=1_000)
    jwt_secret: SecretStr = SecretStr("")
    jwt_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    jwt_issuer: str = "habitjobs"

    @model_validator(mode="after")
    def _check(self) -> Settings:
        secret = self.jwt_secret.get_secret_value()
        if self.env == "prod" and (
            secret.strip().lower() in _PLACEHOLDER_SECRETS or len(secret) < _MIN_SECRET_CHARS
        ):
            raise ConfigError(
                "HABITJOBS_JWT_SECRET must be set to a random string of at least "
                f"{_MIN_SECRET_CHARS} characters (it is empty or a placeholder); "
                "set HABITJOBS_ENV=dev for local work"
            )
        if self.lock_duration_ms < self.stalled_interval_ms:
            raise ConfigError("HABITJOBS_LOCK_DURATION_MS must be at least HABITJOBS_STALLED_INTERVAL_MS")
        if ":" in self.queue_prefix or not self.queue_prefix:
            raise ConfigError("HABITJOBS_QUEUE_PREFIX must be non-empty and contain no ':'")
        return self

    @property
    def jwt_key(self) -> str:
        secret = self.jwt_secret.get_secret_value()
        return secret if secret else DEV_JWT_SECRET

    @property
    def recovery_time_s(self) -> float:
        """Worst case from a worker's death to another worker picking its job up again.

        The lock must expire, then one stalled check marks the job and the next moves it back.
        """
        return (self.lock_duration_ms + 2 * self.stalled_interval_ms) / 1000

    def require_database_url(self) -> str:
        if not self.database_url:
            raise ConfigError(
                "HABITJOBS_DATABASE_URL is not set "
                "(e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/habitjobs); "
                "`habitjobs dev` starts an embedded PostgreSQL when it is unset"
            )
        return self.database_url

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise ConfigError(
                "HABITJOBS_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/0); "
                "`habitjobs dev` starts an embedded Redis when it is unset"
            )
        return self.redis_url


def load_settings(**overrides: object) -> Settings:
    """Build the settings once, at process start; tests pass overrides."""
    return Settings(**overrides)  # type: ignore[arg-type]
