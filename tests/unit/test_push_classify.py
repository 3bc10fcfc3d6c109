"""Every row of the FCM and APNs error tables (docs/push.md), as pure functions."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from habitjobs.push.classify import (
    APNS_DEVICE_BACKOFF_S,
    DEFAULT_BUSY_S,
    DEFAULT_QUOTA_S,
    classify_apns,
    classify_fcm,
    fcm_wants_new_token,
    parse_retry_after,
)
from habitjobs.push.result import Outcome

NOW = datetime(2026, 3, 9, 7, 0, tzinfo=UTC)
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"


def fcm_body(status: int, state: str, code: str | None = None, violations: list[str] | None = None) -> bytes:
    details: list[dict[str, object]] = []
    if code:
        details.append({"@type": FCM_ERROR, "errorCode": code})
    if violations:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": f, "description": "bad"} for f in violations],
            }
        )
    return json.dumps(
        {"error": {"code": status, "message": "m", "status": state, "details": details}}
    ).encode()


def test_fcm_200_is_sent_with_the_message_name() -> None:
    result = classify_fcm(200, {}, b'{"name": "projects/p/messages/123"}', NOW)
    assert result.outcome is Outcome.SENT
    assert result.message_id == "projects/p/messages/123"


def test_fcm_404_unregistered_disables_the_token() -> None:
    result = classify_fcm(404, {}, fcm_body(404, "NOT_FOUND", "UNREGISTERED"), NOW)
    assert (result.outcome, result.reason) == (Outcome.TOKEN_INVALID, "UNREGISTERED")


def test_fcm_400_invalid_argument_with_only_an_fcm_error_is_a_bad_token() -> None:
    result = classify_fcm(400, {}, fcm_body(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"), NOW)
    assert result.outcome is Outcome.TOKEN_INVALID


def test_fcm_400_with_field_violations_is_our_bad_payload() -> None:
    body = fcm_body(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", violations=["message.data[0].value"])
    result = classify_fcm(400, {}, body, NOW)
    assert result.outcome is Outcome.BAD_REQUEST
    assert "message.data[0].value" in result.reason


def test_fcm_403_sender_id_mismatch_disables_the_token() -> None:
    result = classify_fcm(403, {}, fcm_body(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"), NOW)
    assert result.outcome is Outcome.TOKEN_INVALID


def test_fcm_403_without_fcm_error_is_our_configuration() -> None:
    result = classify_fcm(403, {}, fcm_body(403, "PERMISSION_DENIED"), NOW)
    assert (result.outcome, result.pause_scope) == (Outcome.AUTH_CONFIG, "fcm")


def test_fcm_429_retries_after_retry_after_and_slows_the_global_rate() -> None:
    result = classify_fcm(
        429, {"retry-after": "17"}, fcm_body(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), NOW
    )
    assert (result.outcome, result.retry_after_s, result.throttled) == (Outcome.RETRY, 17.0, True)


def test_fcm_429_without_retry_after_waits_a_default() -> None:
    result = classify_fcm(429, {}, fcm_body(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), NOW)
    assert result.retry_after_s == DEFAULT_QUOTA_S


@pytest.mark.parametrize(("status", "state"), [(503, "UNAVAILABLE"), (500, "INTERNAL"), (502, "")])
def test_fcm_5xx_retries_honouring_retry_after(status: int, state: str) -> None:
    plain = classify_fcm(status, {}, fcm_body(status, state, state or None), NOW)
    assert (plain.outcome, plain.retry_after_s, plain.throttled) == (Outcome.RETRY, DEFAULT_BUSY_S, False)
    told = classify_fcm(status, {"retry-after": "40"}, b"", NOW)
    assert told.retry_after_s == 40.0


def test_fcm_401_without_fcm_error_asks_for_a_new_access_token() -> None:
    result = classify_fcm(401, {}, fcm_body(401, "UNAUTHENTICATED"), NOW)
    assert fcm_wants_new_token(result)


def test_fcm_401_third_party_auth_error_pauses_ios_via_fcm_only() -> None:
    result = classify_fcm(401, {}, fcm_body(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"), NOW)
    assert (result.outcome, result.pause_scope) == (Outcome.AUTH_CONFIG, "fcm-ios")
    assert not fcm_wants_new_token(result)


def test_fcm_unreadable_error_bodies_are_still_classified_by_status() -> None:
    assert classify_fcm(404, {}, b"<html>", NOW).outcome is Outcome.BAD_REQUEST
    assert classify_fcm(503, {}, b"not json", NOW).outcome is Outcome.RETRY
    assert classify_fcm(400, {}, b"[1, 2]", NOW).outcome is Outcome.BAD_REQUEST


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    later = (NOW + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, NOW) == pytest.approx(90.0)
    earlier = (NOW - timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(earlier, NOW) == 0.0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None


def apns_body(reason: str, **extra: object) -> bytes:
    return json.dumps({"reason": reason, **extra}).encode()


def test_apns_200_is_sent_with_the_apns_id() -> None:
    result = classify_apns(200, {"apns-id": "ABC"}, b"")
    assert (result.outcome, result.message_id) == (Outcome.SENT, "ABC")


@pytest.mark.parametrize("reason", ["BadDeviceToken", "DeviceTokenNotForTopic"])
def test_apns_400_bad_device_token_disables(reason: str) -> None:
    assert classify_apns(400, {}, apns_body(reason)).outcome is Outcome.TOKEN_INVALID


@pytest.mark.parametrize(
    "reason",
    [
        "BadCollapseId",
        "BadExpirationDate",
        "BadMessageId",
        "BadPriority",
        "BadTopic",
        "MissingTopic",
        "MissingDeviceToken",
        "PayloadEmpty",
        "DuplicateHeaders",
        "InvalidPushType",
    ],
)
def test_apns_400_other_bad_or_missing_is_our_bug(reason: str) -> None:
    result = classify_apns(400, {}, apns_body(reason))
    assert (result.outcome, result.reason) == (Outcome.BAD_REQUEST, reason)


def test_apns_400_idle_timeout_is_retried() -> None:
    assert classify_apns(400, {}, apns_body("IdleTimeout")).outcome is Outcome.RETRY


def test_apns_403_expired_provider_token_is_recognised() -> None:
    result = classify_apns(403, {}, apns_body("ExpiredProviderToken"))
    assert (result.outcome, result.reason) == (Outcome.AUTH_CONFIG, "ExpiredProviderToken")


@pytest.mark.parametrize(
    "reason",
    ["InvalidProviderToken", "MissingProviderToken", "BadCertificate", "Forbidden", "TopicDisallowed"],
)
def test_apns_auth_reasons_pause_the_sender(reason: str) -> None:
    status = 400 if reason == "TopicDisallowed" else 403
    result = classify_apns(status, {}, apns_body(reason))
    assert (result.outcome, result.pause_scope) == (Outcome.AUTH_CONFIG, "apns")


@pytest.mark.parametrize("reason", ["Unregistered", "ExpiredToken"])
def test_apns_410_disables_with_the_provider_timestamp(reason: str) -> None:
    result = classify_apns(410, {}, apns_body(reason, timestamp=1_772_000_000_000))
    assert result.outcome is Outcome.TOKEN_INVALID
    assert result.invalid_since == datetime.fromtimestamp(1_772_000_000, UTC)


def test_apns_410_without_timestamp_has_none() -> None:
    assert classify_apns(410, {}, apns_body("Unregistered")).invalid_since is None


@pytest.mark.parametrize(
    ("status", "reason"), [(413, "PayloadTooLarge"), (404, "BadPath"), (405, "MethodNotAllowed")]
)
def test_apns_our_bugs(status: int, reason: str) -> None:
    assert classify_apns(status, {}, apns_body(reason)).outcome is Outcome.BAD_REQUEST


def test_apns_429_backs_off_that_device_without_slowing_everything() -> None:
    result = classify_apns(429, {}, apns_body("TooManyRequests"))
    assert (result.outcome, result.retry_after_s, result.throttled) == (
        Outcome.RETRY,
        APNS_DEVICE_BACKOFF_S,
        False,
    )
    updates = classify_apns(429, {}, apns_body("TooManyProviderTokenUpdates"))
    assert updates.outcome is Outcome.RETRY


@pytest.mark.parametrize(
    ("status", "reason"), [(500, "InternalServerError"), (503, "ServiceUnavailable"), (503, "Shutdown")]
)
def test_apns_5xx_retries(status: int, reason: str) -> None:
    result = classify_apns(status, {}, apns_body(reason))
    assert (result.outcome, result.retry_after_s) == (Outcome.RETRY, DEFAULT_BUSY_S)


def test_only_sent_invalid_and_bad_request_are_final() -> None:
    assert classify_apns(200, {}, b"").final
    assert classify_apns(410, {}, apns_body("Unregistered")).final
    assert classify_apns(413, {}, apns_body("PayloadTooLarge")).final
    assert not classify_apns(503, {}, b"").final
    assert not classify_apns(403, {}, apns_body("InvalidProviderToken")).final
