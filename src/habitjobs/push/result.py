"""What a sender is asked to send, and the one result type both senders answer with."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class Provider(enum.StrEnum):
    APNS = "apns"
    FCM = "fcm"


class Outcome(enum.StrEnum):
    """How one message ended. Senders never sleep or loop on their own: every other retry is a queue retry."""

    SENT = "sent"
    # The provider says the token is dead (or belongs to another app/project): disable the device.
    TOKEN_INVALID = "token_invalid"  # noqa: S105 - an outcome, not a secret
    # Try again later: the provider is busy or unreachable, or we cannot know whether it got the message.
    RETRY = "retry"
    # The provider refused our request as malformed: our bug; retrying cannot help.
    BAD_REQUEST = "bad_request"
    # Our credentials or configuration are wrong: pause that provider and tell an operator.
    AUTH_CONFIG = "auth_config"


@dataclass(frozen=True)
class PushMessage:
    """One notification to one device, already rendered in the user's language.

    ``collapse_id`` is the same on every attempt of a delivery: it becomes APNs' ``apns-collapse-id`` and
    Android's ``notification.tag``, so a rare duplicate replaces the shown notification instead of adding one.
    ``apns_env`` is ``sandbox`` or ``production`` (None: production, falling back to sandbox).
    """

    provider: Provider
    token: str
    title: str
    body: str
    collapse_id: str
    data: dict[str, str] = field(default_factory=dict)
    expires_at: datetime | None = None
    platform: str = "android"
    apns_env: str | None = None


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    # The provider's id for a sent message (FCM ``name``, APNs ``apns-id``).
    message_id: str | None = None
    # The provider's reason or error code, for ``last_error`` and logs.
    reason: str = ""
    # RETRY: wait at least this long (the provider's Retry-After, or our own estimate).
    retry_after_s: float | None = None
    # TOKEN_INVALID from APNs 410: the token has been invalid since then (a device re-registered after it
    # is kept).
    invalid_since: datetime | None = None
    # True when the provider said "too fast" for the whole project (the rate limiter halves its rate).
    throttled: bool = False
    # RETRY that is a "slow down" and no failure (a 429, our own rate limit, no free stream before the
    # deadline): the job waits without counting an attempt (``SlowDown``). Implied by ``throttled``.
    slow_down: bool = False
    # AUTH_CONFIG: which sender to pause ("apns", "fcm", or "fcm-ios" for Firebase's APNs credentials).
    pause_scope: str | None = None
    # SENT through APNs: the environment that accepted the token (it may differ from the device's record).
    apns_env: str | None = None

    @property
    def final(self) -> bool:
        """True when the delivery is finished (no later attempt will change it)."""
        return self.outcome in (Outcome.SENT, Outcome.TOKEN_INVALID, Outcome.BAD_REQUEST)


def retry(
    reason: str, after_s: float | None = None, *, throttled: bool = False, slow_down: bool = False
) -> SendResult:
    return SendResult(
        Outcome.RETRY,
        reason=reason,
        retry_after_s=after_s,
        throttled=throttled,
        slow_down=slow_down or throttled,
    )
