"""The exception tree, and what each maps to.

Domain code raises these; the API turns them into HTTP answers (``http_status``) and the worker runtime
turns job outcomes into BullMQ moves (retry with backoff, fail now).
"""

from __future__ import annotations

from typing import Any


class HabitjobsError(Exception):
    """Base of every error the project raises on purpose."""

    http_status = 500
    code = "internal_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(HabitjobsError):
    """The request is well-formed JSON but a field is wrong. ``field`` names it."""

    http_status = 422
    code = "invalid_input"

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.field = field


class Unauthorized(HabitjobsError):
    http_status = 401
    code = "unauthorized"


class Forbidden(HabitjobsError):
    http_status = 403
    code = "forbidden"


class NotFound(HabitjobsError):
    """Missing, or not the caller's: the two are answered the same so that ids do not leak."""

    http_status = 404
    code = "not_found"


class Conflict(HabitjobsError):
    http_status = 409
    code = "conflict"


class Gone(HabitjobsError):
    """It existed and was deleted on purpose (an expired export)."""

    http_status = 410
    code = "gone"


class PayloadTooLarge(HabitjobsError):
    http_status = 413
    code = "payload_too_large"


class LimitReached(Conflict):
    """Creating this would take the user over one of the caps on what a user may own."""

    code = "limit_reached"


class RateLimited(HabitjobsError):
    """Too many requests of one class from this user; ``retry_after_s`` says when one more passes."""

    http_status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int, **details: Any) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **details)
        self.retry_after_s = retry_after_s


class Unavailable(HabitjobsError):
    """A store the request needs does not answer; the client may retry."""

    http_status = 503
    code = "unavailable"


# --- job outcomes -------------------------------------------------------------------------------


class JobOutcome(HabitjobsError):
    """Raised by a job handler to tell the runtime how the attempt ended."""


class RetryLater(JobOutcome):
    """This attempt failed for a reason that passes; try again no sooner than ``after_s`` seconds.

    The retry still counts against the job type's attempts.
    """

    code = "retry_later"

    def __init__(self, message: str, *, after_s: float, **details: Any) -> None:
        super().__init__(message, **details)
        self.after_s = max(0.0, after_s)


class SlowDown(RetryLater):
    """Nothing failed: a provider asked us to slow down (429). Run the job again no sooner than ``after_s``
    seconds *without* counting an attempt, so that a provider's "slow down" cannot use up the job's
    attempts. Bounded: a job older than the runtime's slow-down window counts it as a ``RetryLater``."""

    code = "slow_down"


class PermanentFailure(JobOutcome):
    """Retrying cannot help (bad payload, unknown job, our own bug): fail the job now."""

    code = "permanent_failure"
