"""How the fakes answer: the device token's prefix (the part before the first ``-``) picks the outcome.

A test chooses a provider error by choosing a token, e.g. ``unregistered-3f2a…``. Any other token is
accepted (200). The same prefixes work for FCM and APNs where both have the case.

| prefix | FCM | APNs |
|---|---|---|
| ``unregistered``, ``dead`` | 404 UNREGISTERED | 410 Unregistered, timestamp: now or ``…-<ms>-…`` |
| ``badtoken`` | 400 INVALID_ARGUMENT (FcmError only) | 400 BadDeviceToken (both environments) |
| ``sandbox`` | – | accepted by the sandbox server only; BadDeviceToken in production |
| ``badpayload`` | 400 INVALID_ARGUMENT + BadRequest field violation | 400 BadExpirationDate |
| ``notopic`` | – | 400 DeviceTokenNotForTopic |
| ``mismatch`` | 403 SENDER_ID_MISMATCH | – |
| ``toolarge`` | – | 413 PayloadTooLarge |
| ``quota`` / ``toomany`` | 429 QUOTA_EXCEEDED, Retry-After: 7 | 429 TooManyRequests |
| ``unavailable`` | 503 UNAVAILABLE, Retry-After: 3 | 503 ServiceUnavailable |
| ``internal`` | 500 INTERNAL | 500 InternalServerError |
| ``thirdparty`` | 401 THIRD_PARTY_AUTH_ERROR | – |
| ``revoke`` | the first request revokes every access token: 401 without FcmError | – |
| ``drop`` | – | the connection is cut with the request unanswered |
| ``slow`` | answers after ``slow_s`` | answers after ``slow_s`` |

Credentials are checked for real: the OAuth endpoint verifies the service account's RS256 assertion, FCM
the bearer token; APNs verifies the ES256 provider token (403 InvalidProviderToken) and its age (403
ExpiredProviderToken after an hour).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Behaviour:
    """Knobs of a fake provider instance (the token-chosen outcomes need none)."""

    # Every push is answered this long after it arrived (concurrently: streams do not queue).
    latency_ms: float = 0.0
    # APNs: the stream limit before the first accepted push, and after it.
    apns_initial_streams: int = 1
    apns_max_streams: int = 1000
    # APNs: drop the stream limit to 1 after any rejected push (raised again by the next success).
    apns_throttle_on_reject: bool = True
    # APNs: a graceful GOAWAY after this many streams on one connection (0: never).
    apns_goaway_every: int = 0
    # APNs: reset every n-th new stream with REFUSED_STREAM, unprocessed (0: never).
    apns_refuse_every: int = 0
    # APNs sandbox: refuse the provider key (403 InvalidProviderToken, a key restricted to production).
    apns_sandbox_refuses_key: bool = False
    # APNs sandbox: accept connections and requests, never answer.
    apns_sandbox_silent: bool = False
    # FCM: answer every send with 429 QUOTA_EXCEEDED (Retry-After: fcm_quota_retry_after_s) until this long
    # after the first send (0: never).
    fcm_quota_window_s: float = 0.0
    fcm_quota_retry_after_s: int = 1
    # How long ``slow-`` tokens wait before the answer.
    slow_s: float = 30.0
    access_token_ttl_s: int = 3599


def prefix(token: str) -> str:
    return token.split("-", 1)[0].lower()


def unregistered_at_ms(token: str, now_ms: int) -> int:
    """``unregistered-<ms>-…`` carries the provider's timestamp; otherwise it is now."""
    parts = token.split("-")
    if len(parts) > 2 and parts[1].isdigit():
        return int(parts[1])
    return now_ms
