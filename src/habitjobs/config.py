"""Settings: read once from the environment (prefix ``HABITJOBS_``), then passed down explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Env = Literal["dev", "test", "prod"]

# Secrets that people leave in place from examples; refused outside dev and test.
_PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "change_me", "secret", "placeholder", "jwt-secret", "dev", "test", "xxx"}
)
_MIN_SECRET_CHARS = 32
# A rate limit: "<requests>/<seconds>s", e.g. "120/60s".
_RATE = r"^[1-9][0-9]*/[1-9][0-9]*s$"
# Used only when env is dev or test and no secret was given.
DEV_JWT_SECRET = "habitjobs-dev-only-secret-do-not-use-in-production"  # noqa: S105


class ConfigError(ValueError):
    """The configuration cannot run: the message says which setting to fix."""


# Signature algorithms an identity provider's tokens may use: asymmetric only, so that a provider's public
# key can never be taken for a shared secret.
OidcAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
_DEFAULT_ALGORITHMS: tuple[OidcAlgorithm, ...] = ("RS256", "ES256")


class OidcProvider(BaseModel):
    """One identity provider whose access tokens the API accepts (Auth0, Firebase, Cognito, Keycloak, …)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The token's ``iss``, exactly as the provider writes it (Auth0's ends with a slash).
    issuer: str = Field(min_length=1)
    # Accepted audiences (the API identifier, the Firebase project id, the app client id): one is enough.
    audience: list[str] = Field(min_length=1)
    # Where the signing keys are; empty: read ``jwks_uri`` from the issuer's OpenID configuration.
    jwks_url: str = ""
    algorithms: list[OidcAlgorithm] = Field(default_factory=lambda: list(_DEFAULT_ALGORITHMS), min_length=1)
    # The claim holding the audience: ``aud``, except Cognito access tokens, which name it ``client_id``.
    audience_claim: str = "aud"

    @field_validator("audience", mode="before")
    @classmethod
    def _one_or_more(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


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
    # Client-side time limits on store calls (README "Time limits"). The API's are short, so that a request
    # whose store stops answering gets 503 within seconds; workers wait as long as the server-side
    # statement timeouts allow, plus a margin: their limit only catches a server or network gone silent.
    api_db_timeout_s: float = Field(default=2.0, gt=0)  # connect, pool checkout, each statement
    api_redis_timeout_s: float = Field(default=2.0, gt=0)  # connect, each command
    api_deadline_s: float = Field(default=5.0, gt=0)  # a request not answered by then gets 503
    worker_redis_timeout_s: float = Field(default=10.0, gt=0)  # our own commands (not bullmq's reads)

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
    # Reconciliation: rows waiting on a job that Redis no longer has are enqueued again. Rows younger than
    # the grace are left alone (their job may be on its way); each run looks at most at `limit` rows per
    # job type, continuing where the previous run stopped.
    reconcile_every_ms: int = Field(default=30_000, ge=1_000)
    reconcile_grace_s: float = Field(default=30.0, ge=0)
    reconcile_limit: int = Field(default=1_000, ge=1)
    # Modules whose ``JOBS`` list is added to the registry (comma-separated import paths): job types an
    # embedding application brings, or the test suite's own.
    extra_job_modules: str = ""

    # Reminders.
    reminder_tick_every_ms: int = Field(default=60_000, ge=1_000)
    reminder_lookahead_s: int = Field(default=60, ge=0)
    reminder_tolerance_s: int = Field(default=900, ge=0)
    reminder_chunk: int = Field(default=2_000, ge=1)
    reminder_parallel: int = Field(default=3, ge=1, le=16)
    streak_alert_min_days: int = Field(default=2, ge=1)

    # API.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_max_body_bytes: int = Field(default=2_000_000, ge=1_000)
    jwt_secret: SecretStr = SecretStr("")
    jwt_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    jwt_issuer: str = "habitjobs"
    # The operators' dashboard at /admin: where `habitjobs admin login-link` points (this server's
    # public address), how long a printed link stays usable (once), how long a session lasts.
    admin_base_url: str = "http://127.0.0.1:8000"
    admin_login_ttl_s: int = Field(default=600, ge=10, le=86_400)
    admin_session_ttl_s: int = Field(default=8 * 3600, ge=60)
    # Slow and broken clients (per API process): the request line and headers must arrive within this
    # long of the connection opening (or of the first byte of a later request), the body within
    # api_body_timeout_s of the headers' end; else 408 and the connection is closed. One client IP
    # holds at most api_max_connections_per_ip connections at once (0: no cap; behind a proxy that
    # terminates connections every client has the proxy's address, so let the proxy cap them).
    api_header_timeout_s: float = Field(default=10.0, gt=0)
    api_body_timeout_s: float = Field(default=60.0, gt=0)
    api_max_connections_per_ip: int = Field(default=100, ge=0)

    # Per-user rate limits, shared by every API process through Redis: "<requests>/<seconds>s" per
    # class of route (reads, writes, sync uploads, job-starting routes). A flood gets 429 with
    # Retry-After; a Redis that does not answer within rate_limit_redis_timeout_ms lets requests through.
    rate_limits_enabled: bool = True
    rate_limit_read: str = Field(default="300/60s", pattern=_RATE)
    rate_limit_write: str = Field(default="120/60s", pattern=_RATE)
    rate_limit_sync: str = Field(default="60/60s", pattern=_RATE)
    rate_limit_jobs: str = Field(default="10/3600s", pattern=_RATE)
    rate_limit_redis_timeout_ms: int = Field(default=1_000, ge=1)

    # What one user may own (live rows; a device counts while push is enabled on it). Creating one
    # more answers 409 limit_reached; a sync mutation that would is rejected alone with that code.
    max_devices_per_user: int = Field(default=20, ge=1)
    max_habits_per_user: int = Field(default=500, ge=1)
    max_routines_per_user: int = Field(default=50, ge=1)
    max_reminders_per_user: int = Field(default=200, ge=1)

    # Data exports: a finished export is kept this long, then its document is deleted (the export then
    # answers 410 for export_forget_after_s more, then 404). A document larger than export_max_bytes
    # is not built: the export fails with the reason.
    export_keep_s: int = Field(default=7 * 24 * 3600, ge=60)
    export_forget_after_s: int = Field(default=30 * 24 * 3600, ge=0)
    export_max_bytes: int = Field(default=50_000_000, ge=1_000)
    # `maintenance.retention`: how often it runs, and how many rows each of its transactions handles.
    retention_every_ms: int = Field(default=15 * 60 * 1000, ge=1_000)
    retention_batch: int = Field(default=500, ge=1)
    # HS256 tokens minted by `habitjobs token`: accepted in dev and test, refused in prod unless set to true.
    jwt_hs256: bool | None = None

    # Identity providers. One with the three OIDC_* settings, more as a JSON list in OIDC_PROVIDERS (both
    # may be used together). Keys are fetched from the provider and cached: a request never waits for the
    # network except for the very first token of a provider, or a key id not seen yet — which refreshes
    # the keys at most once per `oidc_jwks_min_refresh_s`.
    oidc_issuer: str = ""
    oidc_audience: str = ""  # comma-separated
    oidc_jwks_url: str = ""
    oidc_providers: list[OidcProvider] = Field(default_factory=list)
    oidc_leeway_s: float = Field(default=30.0, ge=0, le=300)
    oidc_jwks_max_age_s: float = Field(default=600.0, ge=1)
    oidc_jwks_min_refresh_s: float = Field(default=30.0, ge=0)
    oidc_http_timeout_s: float = Field(default=5.0, gt=0, le=60)

    # Account deletion: how long a user may still cancel (0: the deletion starts at once), and how many
    # rows each transaction of the deletion job erases.
    account_deletion_grace_s: int = Field(default=0, ge=0, le=90 * 24 * 3600)
    account_deletion_chunk_rows: int = Field(default=1_000, ge=1)

    # `habitjobs dev`: the embedded Valkey and PostgreSQL it starts for a store whose URL is unset keep
    # their data here (relative to the working directory) and listen on loopback on these ports, away
    # from the usual 6379/5432 so that they never collide with a system server.
    dev_data_dir: str = ".habitjobs"
    dev_redis_port: int = Field(default=6399, ge=1, le=65535)
    dev_postgres_port: int = Field(default=5499, ge=1, le=65535)

    # Offline sync. Uploads above these limits get 413 (the app splits its queue into smaller batches).
    sync_max_mutations: int = Field(default=500, ge=1)
    sync_max_batch_bytes: int = Field(default=1_000_000, ge=1_000)
    # Mutations merged per transaction; a crash loses at most one chunk's work, which is then redone.
    sync_chunk_mutations: int = Field(default=500, ge=1)
    # Device clocks run fast: a client timestamp later than the upload's arrival plus this is clamped.
    sync_max_clock_skew_s: float = Field(default=300.0, ge=0)
    # Tombstones older than this are purged; a client whose cursor predates the purge must re-sync.
    sync_tombstone_keep_s: int = Field(default=90 * 24 * 3600, ge=3600)
    sync_batch_keep_s: int = Field(default=7 * 24 * 3600, ge=3600)
    sync_purge_every_ms: int = Field(default=6 * 3600 * 1000, ge=1_000)
    # The statistics recompute after a merge waits this long for more uploads of the same user.
    sync_recompute_debounce_ms: int = Field(default=30_000, ge=0)

    # Statistics and streaks. The nightly roll-up of a zone works through its users in chunks of this
    # many, one transaction each; every analytics statement is cancelled after the timeout (the primary
    # must never be held by a runaway aggregate).
    analytics_chunk_users: int = Field(default=1_000, ge=1)
    analytics_statement_timeout_ms: int = Field(default=120_000, ge=0)
    # `analytics.plan`: how often it looks for zones whose day ended, and how many past local days it
    # still catches up on (a planner that was down for a day leaves no hole).
    analytics_plan_every_ms: int = Field(default=5 * 60 * 1000, ge=1_000)
    analytics_plan_lookback_days: int = Field(default=2, ge=1, le=14)
    # Dirty marks older than this without a recompute (a lost debounced enqueue) are swept by the planner.
    analytics_stale_mark_s: float = Field(default=600.0, ge=0)

    # Push notifications. A provider without credentials is "not configured": the batch job fails visibly
    # and its deliveries are failed until the job is retried. The host/endpoint/CA overrides point the
    # senders at local fakes.
    push_fcm_credentials_file: str | None = None  # Google service-account JSON key
    push_fcm_project_id: str | None = None  # default: the key file's project_id
    push_fcm_endpoint: str = "https://fcm.googleapis.com"
    push_apns_key_file: str | None = None  # APNs auth key (.p8)
    push_apns_key_id: str = ""
    push_apns_team_id: str = ""
    push_apns_topic: str = ""  # the app's bundle id
    push_apns_host: str = "api.push.apple.com:443"
    push_apns_sandbox_host: str = "api.sandbox.push.apple.com:443"
    push_ca_file: str | None = None  # extra CA bundle (the fakes' throwaway CA); default: system CAs
    # Per worker process: set to the project's target (50-70% of its quota) ÷ the number of workers.
    push_fcm_rate_per_s: float = Field(default=3_000.0, gt=0)
    push_apns_rate_per_s: float = Field(default=5_000.0, gt=0)
    push_fcm_max_connections: int = Field(default=4, ge=1)
    push_apns_connections: int = Field(default=4, ge=1, le=16)  # streams overlap better on several
    push_apns_max_streams: int = Field(default=200, ge=1)  # our cap per connection, below APNs' own
    push_request_timeout_s: float = Field(default=10.0, gt=0)
    # A claimed delivery is re-sent by another worker only after its lease ran out (a crash mid-send).
    push_lease_s: float = Field(default=120.0, ge=1)
    # After credentials are refused, a provider is not tried again by this process for this long.
    push_auth_pause_s: float = Field(default=300.0, ge=0)
    # Outcomes are written at most this long after they are known (one UPDATE for many of them).
    push_outcome_flush_ms: int = Field(default=50, ge=0)

    @model_validator(mode="after")
    def _check(self) -> Settings:
        secret = self.jwt_secret.get_secret_value()
        if (
            self.env == "prod"
            and self.hs256_enabled
            and (secret.strip().lower() in _PLACEHOLDER_SECRETS or len(secret) < _MIN_SECRET_CHARS)
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
        self._check_providers()
        return self

    def _check_providers(self) -> None:
        if bool(self.oidc_issuer) != bool(self.oidc_audience):
            raise ConfigError("HABITJOBS_OIDC_ISSUER and HABITJOBS_OIDC_AUDIENCE go together: set both")
        if self.oidc_jwks_url and not self.oidc_issuer:
            raise ConfigError(
                "HABITJOBS_OIDC_JWKS_URL needs HABITJOBS_OIDC_ISSUER and HABITJOBS_OIDC_AUDIENCE"
            )
        issuers = [p.issuer for p in self.identity_providers]
        if len(set(issuers)) != len(issuers):
            raise ConfigError("an identity provider's issuer is configured twice (HABITJOBS_OIDC_*)")
        if self.jwt_issuer in issuers:
            raise ConfigError("an identity provider may not use this server's own HABITJOBS_JWT_ISSUER")
        for provider in self.identity_providers:
            urls = [provider.issuer, provider.jwks_url] if provider.jwks_url else [provider.issuer]
            # A key set fetched over plain HTTP could be replaced on the way: production trusts TLS only.
            if self.env == "prod" and any(not url.startswith("https://") for url in urls):
                raise ConfigError(f"identity provider {provider.issuer!r}: its URLs must be https:// in prod")

    @property
    def hs256_enabled(self) -> bool:
        """Whether `habitjobs token`'s HS256 tokens are accepted: by default in dev and test only."""
        return self.jwt_hs256 if self.jwt_hs256 is not None else self.env != "prod"

    @property
    def identity_providers(self) -> list[OidcProvider]:
        """Every configured identity provider: the one of the OIDC_* settings first, then OIDC_PROVIDERS."""
        single: list[OidcProvider] = []
        if self.oidc_issuer and self.oidc_audience:
            audiences = [a.strip() for a in self.oidc_audience.split(",") if a.strip()]
            single.append(
                OidcProvider(issuer=self.oidc_issuer, audience=audiences, jwks_url=self.oidc_jwks_url)
            )
        return [*single, *self.oidc_providers]

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

    @property
    def reconcile_bound_s(self) -> float:
        """Worst case from Redis losing a job to the reconciliation enqueueing it again (with fewer than
        ``reconcile_limit`` rows of its type waiting): the row's grace, then one whole period."""
        return self.reconcile_grace_s + self.reconcile_every_ms / 1000

    def api_limits(self) -> StoreLimits:
        """Time limits of the API's store calls: short, a stalled store means 503 within seconds."""
        return StoreLimits(
            db_connect_s=self.api_db_timeout_s,
            db_checkout_s=self.api_db_timeout_s,
            db_statement_s=self.api_db_timeout_s,
            redis_command_s=self.api_redis_timeout_s,
        )

    def worker_limits(self) -> StoreLimits:
        """Time limits of the workers' (and the CLI's) store calls: a statement may run as long as the
        longest server-side statement timeout; the client limit adds a margin and only catches a server
        or network that went silent."""
        longest_ms = max(self.db_statement_timeout_ms, self.analytics_statement_timeout_ms)
        return StoreLimits(
            db_connect_s=10.0,
            db_checkout_s=30.0,
            db_statement_s=longest_ms / 1000 + 10.0 if longest_ms else 0.0,
            redis_command_s=self.worker_redis_timeout_s,
        )

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


@dataclass(frozen=True)
class StoreLimits:
    """Client-side time limits on one process's store calls (0: none)."""

    db_connect_s: float  # opening a PostgreSQL connection
    db_checkout_s: float  # waiting for a free connection of the pool
    db_statement_s: float  # one statement, as seen from the client
    redis_command_s: float  # one command of a command client (never a blocking read)


def load_settings(**overrides: object) -> Settings:
    """Build the settings once, at process start; tests pass overrides."""
    return Settings(**overrides)  # type: ignore[arg-type]
