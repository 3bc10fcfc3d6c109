"""The providers' error tables as pure functions: an HTTP answer in, a :class:`SendResult` out.

No I/O here, so every row of both tables is unit-tested without a network; the contract tests then check
the same rows over real TLS + HTTP/2 against the fake providers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from habitjobs.push.result import Outcome, SendResult, retry

# How long to wait when a provider says "busy" without a Retry-After.
DEFAULT_BUSY_S = 5.0
DEFAULT_QUOTA_S = 60.0
# APNs 429 TooManyRequests is about one device: back that device off, not the whole sender.
APNS_DEVICE_BACKOFF_S = 30.0

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
# 401 without an FcmError: our OAuth access token expired or was revoked; the sender refreshes it once.
FCM_ACCESS_TOKEN_REJECTED = "UNAUTHENTICATED"  # noqa: S105 - an error code, not a secret
# 403 ExpiredProviderToken: the sender makes a new JWT (if the current one is old enough) and resends once.
APNS_EXPIRED_PROVIDER_TOKEN = "ExpiredProviderToken"  # noqa: S105 - an error code
APNS_BAD_DEVICE_TOKEN = "BadDeviceToken"  # noqa: S105 - an error code


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After is either seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body) if body else {}
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _fcm_error(body: bytes) -> tuple[str, str | None, list[str], str]:
    """(status, FcmError errorCode or None, BadRequest field violations, message) of an FCM error body."""
    error = _json(body).get("error")
    if not isinstance(error, dict):
        return "", None, [], ""
    code: str | None = None
    violations: list[str] = []
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        if detail.get("@type") == FCM_ERROR_TYPE:
            code = str(detail.get("errorCode") or "") or None
        elif detail.get("@type") == BAD_REQUEST_TYPE:
            for violation in detail.get("fieldViolations") or []:
                if isinstance(violation, dict):
                    violations.append(f"{violation.get('field')}: {violation.get('description')}")
    return str(error.get("status") or ""), code, violations, str(error.get("message") or "")


def classify_fcm(status: int, headers: Mapping[str, str], body: bytes, now: datetime) -> SendResult:
    """FCM HTTP v1 ``messages:send`` answer → outcome (docs/push.md, FCM table)."""
    if status == 200:
        name = _json(body).get("name")
        return SendResult(Outcome.SENT, message_id=str(name) if name else None)
    error_status, code, violations, message = _fcm_error(body)
    retry_after = parse_retry_after(headers.get("retry-after"), now)
    reason = code or error_status or f"HTTP {status}"
    if status == 404 and code == "UNREGISTERED":
        return SendResult(Outcome.TOKEN_INVALID, reason="UNREGISTERED")
    if status == 400:
        if violations:
            return SendResult(Outcome.BAD_REQUEST, reason=f"INVALID_ARGUMENT: {'; '.join(violations)}")
        if code == "INVALID_ARGUMENT":
            return SendResult(Outcome.TOKEN_INVALID, reason="INVALID_ARGUMENT (registration token)")
        return SendResult(Outcome.BAD_REQUEST, reason=f"{reason}: {message}".strip(": "))
    if status == 403:
        if code == "SENDER_ID_MISMATCH":
            return SendResult(Outcome.TOKEN_INVALID, reason="SENDER_ID_MISMATCH")
        return SendResult(Outcome.AUTH_CONFIG, reason=f"{reason}: {message}".strip(": "), pause_scope="fcm")
    if status == 401:
        if code == "THIRD_PARTY_AUTH_ERROR":
            return SendResult(Outcome.AUTH_CONFIG, reason="THIRD_PARTY_AUTH_ERROR", pause_scope="fcm-ios")
        return SendResult(Outcome.AUTH_CONFIG, reason=FCM_ACCESS_TOKEN_REJECTED, pause_scope="fcm")
    if status == 429:
        return retry(code or "QUOTA_EXCEEDED", retry_after or DEFAULT_QUOTA_S, throttled=True)
    if status >= 500:
        return retry(reason, retry_after or DEFAULT_BUSY_S)
    return SendResult(Outcome.BAD_REQUEST, reason=f"{reason}: {message}".strip(": "))


def fcm_wants_new_token(result: SendResult) -> bool:
    return result.outcome is Outcome.AUTH_CONFIG and result.reason == FCM_ACCESS_TOKEN_REJECTED


# APNs reasons that are about our credentials or set-up, not about one message.
_APNS_AUTH = frozenset(
    {
        "BadCertificate",
        "BadCertificateEnvironment",
        "ExpiredProviderToken",
        "Forbidden",
        "InvalidProviderToken",
        "MissingProviderToken",
        "UnrelatedKeyIdInToken",
        "BadEnvironmentKeyIdInToken",
        "TopicDisallowed",
    }
)


def classify_apns(status: int, headers: Mapping[str, str], body: bytes) -> SendResult:
    """APNs provider API answer → outcome (docs/push.md, APNs table)."""
    if status == 200:
        return SendResult(Outcome.SENT, message_id=headers.get("apns-id"))
    payload = _json(body)
    reason = str(payload.get("reason") or f"HTTP {status}")
    if status == 410:
        since: datetime | None = None
        stamp = payload.get("timestamp")
        if isinstance(stamp, int | float) and stamp > 0:
            since = datetime.fromtimestamp(stamp / 1000, UTC)
        return SendResult(Outcome.TOKEN_INVALID, reason=reason, invalid_since=since)
    if status == 400:
        if reason in (APNS_BAD_DEVICE_TOKEN, "DeviceTokenNotForTopic"):
            return SendResult(Outcome.TOKEN_INVALID, reason=reason)
        if reason == "IdleTimeout":
            return retry(reason, 0.0)
        if reason in _APNS_AUTH:
            return SendResult(Outcome.AUTH_CONFIG, reason=reason, pause_scope="apns")
        return SendResult(Outcome.BAD_REQUEST, reason=reason)
    if status == 403:
        return SendResult(Outcome.AUTH_CONFIG, reason=reason, pause_scope="apns")
    if status == 429:
        if reason == "TooManyProviderTokenUpdates":
            return retry(reason, DEFAULT_QUOTA_S)
        return retry(reason, APNS_DEVICE_BACKOFF_S, slow_down=True)  # "slow down" for that device
    if status >= 500:
        return retry(reason, DEFAULT_BUSY_S)
    # 404 BadPath, 405 MethodNotAllowed, 413 PayloadTooLarge and anything else: our request is wrong.
    return SendResult(Outcome.BAD_REQUEST, reason=reason)
