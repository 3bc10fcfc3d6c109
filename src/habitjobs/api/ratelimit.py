"""Per-user rate limits, shared by every API process through Redis.

Each class of route (reads, writes, sync uploads, job-starting routes) has a quota per window, e.g.
120 writes per 60 s. The limit is a GCRA ("generic cell rate algorithm", a token bucket kept as one
timestamp): a user may spend the whole quota at once, then one request per ``window / quota``. The
decision and the numbers the headers need come from one Lua script, so one round trip decides
atomically for all processes; Redis's clock (``TIME``) is the only clock, so API hosts need not agree.

Every limited response carries the IETF ``RateLimit-Policy`` and ``RateLimit`` fields
(draft-ietf-httpapi-ratelimit-headers): ``RateLimit-Policy: "write";q=120;w=60`` and
``RateLimit: "write";r=<requests left now>;t=<seconds until the whole quota is back>``. A refused
request is a 429 with ``Retry-After`` (seconds until one more request passes).

A Redis that fails or does not answer within ``rate_limit_redis_timeout_ms`` must not fail the API:
requests then pass unlimited (fail open), one warning is logged per outage, and Redis is asked again
only every few seconds until it answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis.exceptions as redis_errors
from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from habitjobs.api.deps import SignedIn
from habitjobs.config import Settings
from habitjobs.errors import RateLimited

log = logging.getLogger(__name__)

READ = "read"
WRITE = "write"
SYNC = "sync"
JOBS = "jobs"

# Routes whose class is not the one their method implies: uploads, and routes that start a job.
_SPECIAL: dict[tuple[str, str], str] = {
    ("POST", "/v1/sync/push"): SYNC,
    ("POST", "/v1/me/exports"): JOBS,
}
_STATE_KEY = "habitjobs_rate_limit"
# While Redis is failing, it is asked again at most this often (other requests pass meanwhile).
_PROBE_EVERY_S = 5.0

# KEYS[1] the user's bucket for one class; ARGV[1] quota, ARGV[2] window in ms.
# The bucket holds the "theoretical arrival time" (tat): when it would be empty again if nothing more
# came. A request is allowed if tat + one interval stays within one window of now.
# Returns {allowed 0|1, requests left, ms until one more passes, ms until the quota is whole}.
_GCRA = """
local quota = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local interval = window / quota
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval
local allow_at = next_tat - window
if now < allow_at then
  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
end
-- An interval below the clock's resolution (a quota of millions a minute) rounds away: the key then
-- still needs an expiry of at least one millisecond (PX 0 is an error).
local ttl = math.max(1, math.ceil(next_tat - now))
redis.call('SET', KEYS[1], tostring(next_tat), 'PX', ttl)
return {1, math.floor((window - (next_tat - now)) / interval), 0, math.ceil(next_tat - now)}
"""


@dataclass(frozen=True)
class Rate:
    quota: int
    window_s: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"120/60s"`` → 120 requests per 60 seconds (the settings' pattern guarantees the shape)."""
        quota, window = text.rstrip("s").split("/")
        return cls(int(quota), int(window))


def rates(settings: Settings) -> dict[str, Rate]:
    return {
        READ: Rate.parse(settings.rate_limit_read),
        WRITE: Rate.parse(settings.rate_limit_write),
        SYNC: Rate.parse(settings.rate_limit_sync),
        JOBS: Rate.parse(settings.rate_limit_jobs),
    }


def policy_for(method: str, path: str) -> str:
    """The class of a route, by method and path template."""
    special = _SPECIAL.get((method, path))
    if special is not None:
        return special
    return READ if method in ("GET", "HEAD", "OPTIONS") else WRITE


@dataclass(frozen=True)
class Decision:
    policy: str
    rate: Rate
    allowed: bool
    remaining: int
    retry_after_s: int
    full_after_s: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        policy = f'"{self.policy}";q={self.rate.quota};w={self.rate.window_s}'
        current = f'"{self.policy}";r={self.remaining};t={self.full_after_s}'
        return [(b"ratelimit-policy", policy.encode()), (b"ratelimit", current.encode())]


def _pseudonym(user_id: uuid.UUID) -> str:
    """The counters are keyed by a digest of the user id, not the id: Redis then holds no user id that
    an account deletion would have to find (the counters expire after their window anyway)."""
    return hashlib.blake2b(user_id.bytes, digest_size=12).hexdigest()


class RateLimiter:
    """One per API process; its Redis client is the process's pooled one."""

    def __init__(self, settings: Settings, redis: Any) -> None:
        self._enabled = settings.rate_limits_enabled
        self._rates = rates(settings)
        self._prefix = f"{settings.queue_prefix}:limits:rate"
        self._timeout_s = settings.rate_limit_redis_timeout_ms / 1000
        self._script = redis.register_script(_GCRA)
        self._failing = False
        self._next_probe = 0.0

    async def hit(self, policy: str, user_id: uuid.UUID) -> Decision | None:
        """Count one request of ``policy`` for the user; None when limits are off or Redis is away."""
        if not self._enabled:
            return None
        now = time.monotonic()
        if self._failing and now < self._next_probe:
            return None
        rate = self._rates[policy]
        try:
            async with asyncio.timeout(self._timeout_s):
                raw = await self._script(
                    keys=[f"{self._prefix}:{policy}:{_pseudonym(user_id)}"],
                    args=[rate.quota, rate.window_s * 1000],
                )
        except (redis_errors.RedisError, OSError, TimeoutError) as exc:
            if not self._failing:
                log.warning("rate limits are not enforced while Redis does not answer: %r", exc)
            self._failing = True
            self._next_probe = now + _PROBE_EVERY_S
            return None
        if self._failing:
            log.warning("rate limits are enforced again: Redis answers")
            self._failing = False
        allowed, remaining, retry_ms, full_ms = (int(v) for v in raw)
        return Decision(
            policy=policy,
            rate=rate,
            allowed=bool(allowed),
            remaining=max(0, remaining),
            retry_after_s=max(1, math.ceil(retry_ms / 1000)) if not allowed else 0,
            full_after_s=math.ceil(full_ms / 1000),
        )

    async def check(self, request: Request, policy: str, user_id: uuid.UUID) -> None:
        """Count the request; 429 when the user is over the class's limit. The answer (any status)
        carries the rate-limit header fields (see :class:`RateLimitHeaders`)."""
        decision = await self.hit(policy, user_id)
        if decision is None:
            return
        request.scope.setdefault("state", {})[_STATE_KEY] = decision
        if not decision.allowed:
            raise RateLimited(
                f"too many {policy} requests: at most {decision.rate.quota} per {decision.rate.window_s} s; "
                f"retry in {decision.retry_after_s} s",
                retry_after_s=decision.retry_after_s,
                policy=policy,
                limit=decision.rate.quota,
                window_s=decision.rate.window_s,
            )


def limiter(request: Request) -> RateLimiter:
    """The app's limiter, made on first use from the app's resources."""
    found: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if found is None:
        resources = request.app.state.resources
        found = request.app.state.rate_limiter = RateLimiter(resources.settings, resources.producer.redis)
    return found


async def rate_limit(request: Request, principal: SignedIn) -> None:
    """Dependency for a router: counts the request against its route's class for the caller."""
    route = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    await limiter(request).check(request, policy_for(request.method, path), principal.user_id)


class RateLimitHeaders:
    """Adds the rate-limit header fields to the answer of a request that was counted (also to the 429
    and to answers built as a plain ``Response``, which FastAPI's header merging does not reach)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})

        async def with_headers(message: Message) -> None:
            decision: Decision | None = state.get(_STATE_KEY)
            if message["type"] == "http.response.start" and decision is not None:
                message = {**message, "headers": [*message.get("headers", []), *decision.headers()]}
            await send(message)

        await self.app(scope, receive, with_headers)
