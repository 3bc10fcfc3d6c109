"""The FCM sender against the fake FCM + OAuth servers, over real TLS and HTTP/2: every row of the table."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from habitjobs.push.fakes import RunningFakes
from habitjobs.push.fcm import RENEW_EARLY_S, FcmSender
from habitjobs.push.gateway import PushGateway
from habitjobs.push.result import Outcome, Provider, PushMessage
from tests.fakes.push import fake_settings, fakes_for_module, token


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFakes]:
    yield from fakes_for_module(tmp_path_factory, slow_s=5.0)


@pytest.fixture
async def gateway(fakes: RunningFakes) -> AsyncIterator[PushGateway]:
    gw = PushGateway(fake_settings(fakes))
    yield gw
    await gw.aclose()


def message(device_token: str, *, platform: str = "android") -> PushMessage:
    return PushMessage(
        provider=Provider.FCM,
        token=device_token,
        title="Read",
        body="A small step",
        collapse_id="hj-collapse-1",
        data={"kind": "habit_reminder", "habit_id": "h1"},
        expires_at=datetime.now(UTC) + timedelta(minutes=30),
        platform=platform,
    )


async def test_200_sends_notification_string_data_tag_and_collapse_id(
    gateway: PushGateway, fakes: RunningFakes
) -> None:
    device = token("ok")
    result = await gateway.send(message(device))
    assert result.outcome is Outcome.SENT
    assert str(result.message_id).startswith("projects/habitjobs-fake/messages/")
    (received,) = fakes.log.received(device)
    assert (received.title, received.body) == ("Read", "A small step")
    assert received.collapse_id == "hj-collapse-1"  # android.notification.tag
    assert received.data == {"kind": "habit_reminder", "habit_id": "h1"}


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("unregistered", "UNREGISTERED"),
        ("badtoken", "INVALID_ARGUMENT (registration token)"),
        ("mismatch", "SENDER_ID_MISMATCH"),
    ],
)
async def test_dead_tokens(gateway: PushGateway, fakes: RunningFakes, kind: str, reason: str) -> None:
    device = token(kind)
    result = await gateway.send(message(device))
    assert (result.outcome, result.reason) == (Outcome.TOKEN_INVALID, reason)
    assert fakes.log.count(device) == 0


async def test_400_with_field_violations_is_a_bad_request(gateway: PushGateway) -> None:
    result = await gateway.send(message(token("badpayload")))
    assert result.outcome is Outcome.BAD_REQUEST
    assert "message.android.ttl" in result.reason


async def test_429_retries_after_retry_after_and_halves_the_rate(gateway: PushGateway) -> None:
    bucket = gateway.limits[Provider.FCM]
    rate = bucket.rate_per_s
    result = await gateway.send(message(token("quota")))
    assert (result.outcome, result.retry_after_s, result.throttled) == (Outcome.RETRY, 7.0, True)
    assert bucket.rate_per_s == rate / 2
    # Paused until Retry-After: the next message is not even sent.
    paused = await gateway.send(message(token("ok")))
    assert paused.outcome is Outcome.RETRY
    assert 5.0 < (paused.retry_after_s or 0) <= 7.0


@pytest.mark.parametrize(("kind", "after_s"), [("unavailable", 3.0), ("internal", 5.0)])
async def test_5xx_retries_honouring_retry_after(gateway: PushGateway, kind: str, after_s: float) -> None:
    result = await gateway.send(message(token(kind)))
    assert (result.outcome, result.retry_after_s) == (Outcome.RETRY, after_s)


async def test_401_without_fcm_error_refreshes_the_access_token_once_and_resends(
    gateway: PushGateway, fakes: RunningFakes
) -> None:
    await gateway.send(message(token("ok")))
    issued = fakes.fcm.tokens_issued
    device = token("revoke")  # the fake revokes every access token on the first request
    result = await gateway.send(message(device))
    assert result.outcome is Outcome.SENT
    assert fakes.fcm.tokens_issued == issued + 1
    assert fakes.log.count(device) == 1


async def test_401_third_party_auth_error_pauses_ios_via_fcm_but_not_android(gateway: PushGateway) -> None:
    result = await gateway.send(message(token("thirdparty"), platform="ios"))
    assert (result.outcome, result.pause_scope) == (Outcome.AUTH_CONFIG, "fcm-ios")
    blocked = await gateway.send(message(token("ok"), platform="ios"))
    assert blocked.outcome is Outcome.AUTH_CONFIG
    assert "paused" in blocked.reason
    assert (await gateway.send(message(token("ok"), platform="android"))).outcome is Outcome.SENT


async def test_the_access_token_is_cached_and_renewed_early_in_the_background(fakes: RunningFakes) -> None:
    # The client's clock starts behind, so that moving it into the renewal window brings it to real time
    # (the fake OAuth server refuses assertions issued in the future).
    window = 3599 - RENEW_EARLY_S + 10
    now = [time.time() - window]
    sender = FcmSender(fake_settings(fakes), clock=lambda: now[0])
    try:
        before = fakes.fcm.tokens_issued
        results = await asyncio.gather(*(sender.send(message(token("ok"))) for _ in range(20)))
        assert {r.outcome for r in results} == {Outcome.SENT}
        assert fakes.fcm.tokens_issued == before + 1  # one fetch shared by 20 concurrent sends
        assert sender.tokens is not None
        first = await sender.tokens.get()
        now[0] += window  # inside the renewal window, still valid
        assert await sender.tokens.get() == first  # answered at once with the current token

        tokens = sender.tokens

        async def renewed() -> None:  # the background renewal has handed the client a new token
            while await tokens.get() == first:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(renewed(), 10)
        assert fakes.fcm.tokens_issued == before + 2  # one renewal, however often it was asked meanwhile
    finally:
        await sender.aclose()


async def test_credentials_the_token_endpoint_refuses_are_an_auth_config_error(
    fakes: RunningFakes, tmp_path: Path
) -> None:
    document = json.loads(fakes.credentials.service_account_file.read_text())
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    document["private_key"] = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(document))
    gateway = PushGateway(fake_settings(fakes, push_fcm_credentials_file=str(wrong)))
    try:
        result = await gateway.send(message(token("ok")))
        assert (result.outcome, result.pause_scope) == (Outcome.AUTH_CONFIG, "fcm")
        assert "invalid_grant" in result.reason
    finally:
        await gateway.aclose()


async def test_fcm_not_configured_is_an_auth_config_error(fakes: RunningFakes) -> None:
    gateway = PushGateway(fake_settings(fakes, push_fcm_credentials_file=None))
    try:
        result = await gateway.send(message(token("ok")))
        assert result.outcome is Outcome.AUTH_CONFIG
        assert "HABITJOBS_PUSH_FCM_CREDENTIALS_FILE" in result.reason
    finally:
        await gateway.aclose()


async def test_no_answer_before_the_timeout_is_an_ambiguous_retry(fakes: RunningFakes) -> None:
    sender = FcmSender(fake_settings(fakes, push_request_timeout_s=0.5))
    try:
        result = await sender.send(message(token("slow")))
        assert result.outcome is Outcome.RETRY
        assert "may have been delivered" in result.reason
        assert (await sender.send(message(token("ok")))).outcome is Outcome.SENT
    finally:
        await sender.aclose()


async def test_an_unreachable_endpoint_is_a_retry(fakes: RunningFakes) -> None:
    sender = FcmSender(
        fake_settings(fakes, push_fcm_endpoint="https://127.0.0.1:9", push_request_timeout_s=2)
    )
    try:
        result = await sender.send(message(token("ok")))
        assert result.outcome is Outcome.RETRY
        assert "unreachable" in result.reason
    finally:
        await sender.aclose()
