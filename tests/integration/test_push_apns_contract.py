"""The APNs sender against the fake APNs server (raw h2 over TLS): every row of the error table, and the
frame-level behaviour (stream limits, REFUSED_STREAM, GOAWAY, lost connections, timeouts)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from habitjobs.push.apns import ApnsSender
from habitjobs.push.credentials import APNS_TOKEN_MIN_AGE_S
from habitjobs.push.fakes import RunningFakes
from habitjobs.push.fakes.outcomes import Behaviour
from habitjobs.push.gateway import PushGateway
from habitjobs.push.h2conn import Connection
from habitjobs.push.result import Outcome, Provider, PushMessage
from tests.fakes.push import fake_settings, fakes_for_module, token


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFakes]:
    yield from fakes_for_module(tmp_path_factory, slow_s=5.0)


@pytest.fixture
async def sender(fakes: RunningFakes) -> AsyncIterator[ApnsSender]:
    apns = ApnsSender(fake_settings(fakes))
    yield apns
    await apns.aclose()


def message(device_token: str, *, env: str | None = "production", title: str = "Stretch") -> PushMessage:
    return PushMessage(
        provider=Provider.APNS,
        token=device_token,
        title=title,
        body="Your 12-day streak ends at midnight",
        collapse_id="hj-occasion-7",
        data={"kind": "streak_at_risk", "habit_id": "h7"},
        expires_at=datetime.now(UTC) + timedelta(minutes=30),
        platform="ios",
        apns_env=env,
    )


# --- the error table ---------------------------------------------------------------------------


async def test_200_headers_only_is_sent_with_collapse_id_and_payload(
    sender: ApnsSender, fakes: RunningFakes
) -> None:
    device = token("ok")
    result = await sender.send(message(device))
    assert (result.outcome, result.apns_env) == (Outcome.SENT, "production")
    assert result.message_id  # the apns-id the server answered with
    (received,) = fakes.log.received(device)
    assert (received.env, received.collapse_id, received.title) == ("production", "hj-occasion-7", "Stretch")
    assert received.data == {"kind": "streak_at_risk", "habit_id": "h7"}


async def test_400_bad_device_token_is_tried_on_the_other_environment_then_disabled(
    sender: ApnsSender, fakes: RunningFakes
) -> None:
    result = await sender.send(message(token("badtoken")))
    assert (result.outcome, result.reason) == (Outcome.TOKEN_INVALID, "BadDeviceToken")
    assert "sandbox" in sender._pools  # the sandbox server was asked too


async def test_a_development_token_registered_as_production_reaches_the_sandbox(
    sender: ApnsSender, fakes: RunningFakes
) -> None:
    device = token("sandbox")
    result = await sender.send(message(device, env="production"))
    assert (result.outcome, result.apns_env) == (Outcome.SENT, "sandbox")
    assert [r.env for r in fakes.log.received(device)] == ["sandbox"]


@pytest.mark.parametrize(
    ("kind", "outcome", "reason"),
    [
        ("badpayload", Outcome.BAD_REQUEST, "BadExpirationDate"),
        ("notopic", Outcome.TOKEN_INVALID, "DeviceTokenNotForTopic"),
        ("toolarge", Outcome.BAD_REQUEST, "PayloadTooLarge"),
        ("toomany", Outcome.RETRY, "TooManyRequests"),
        ("internal", Outcome.RETRY, "InternalServerError"),
        ("unavailable", Outcome.RETRY, "ServiceUnavailable"),
    ],
)
async def test_error_rows(
    sender: ApnsSender, fakes: RunningFakes, kind: str, outcome: Outcome, reason: str
) -> None:
    device = token(kind)
    result = await sender.send(message(device))
    assert (result.outcome, result.reason) == (outcome, reason)
    assert fakes.log.count(device) == 0


async def test_410_unregistered_carries_the_providers_timestamp(sender: ApnsSender) -> None:
    stamp_ms = 1_767_000_000_123
    result = await sender.send(message(f"unregistered-{stamp_ms}-{token()}"))
    assert (result.outcome, result.reason) == (Outcome.TOKEN_INVALID, "Unregistered")
    assert result.invalid_since == datetime.fromtimestamp(stamp_ms / 1000, UTC)


async def test_a_payload_over_4096_bytes_is_refused_before_sending(
    sender: ApnsSender, fakes: RunningFakes
) -> None:
    requests = fakes.log.requests
    result = await sender.send(message(token("ok"), title="x" * 5000))
    assert result.outcome is Outcome.BAD_REQUEST
    assert "PayloadTooLarge" in result.reason
    assert fakes.log.requests == requests


async def test_403_expired_provider_token_is_renewed_once_and_resent(fakes: RunningFakes) -> None:
    # The sender's clock is an hour behind: its first provider token is already over APNs' 60 minutes.
    offset = [-3700.0]
    apns = ApnsSender(fake_settings(fakes), clock=lambda: time.time() + offset[0])
    try:
        await apns._ready()
        assert apns._token is not None
        apns._token.current()
        offset[0] = 0.0  # now the token is 3700 s old: older than APNs accepts, old enough to renew
        device = token("ok")
        result = await apns.send(message(device))
        assert result.outcome is Outcome.SENT
        assert fakes.log.count(device) == 1
    finally:
        await apns.aclose()


async def test_403_expired_provider_token_younger_than_20_minutes_is_retried_later(
    fakes: RunningFakes,
) -> None:
    # A clock that jumped: the token looks 10 minutes old here but over an hour old to APNs.
    offset = [-3700.0]
    apns = ApnsSender(fake_settings(fakes), clock=lambda: time.time() + offset[0])
    try:
        await apns._ready()
        assert apns._token is not None
        apns._token.current()
        offset[0] += 600
        result = await apns.send(message(token("ok")))
        assert result.outcome is Outcome.RETRY
        assert result.retry_after_s == pytest.approx(APNS_TOKEN_MIN_AGE_S - 600, abs=5)
    finally:
        await apns.aclose()


async def test_403_invalid_provider_token_pauses_the_sender(fakes: RunningFakes, tmp_path: Path) -> None:
    other_key = tmp_path / "AuthKey_OTHER.p8"
    other_key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    gateway = PushGateway(fake_settings(fakes, push_apns_key_file=str(other_key)))
    try:
        result = await gateway.send(message(token("ok")))
        assert (result.outcome, result.reason, result.pause_scope) == (
            Outcome.AUTH_CONFIG,
            "InvalidProviderToken",
            "apns",
        )
        requests = fakes.log.requests
        paused = await gateway.send(message(token("ok")))
        assert paused.outcome is Outcome.AUTH_CONFIG
        assert fakes.log.requests == requests  # paused: nothing sent
    finally:
        await gateway.aclose()


# --- frame-level behaviour ---------------------------------------------------------------------


async def test_one_stream_until_the_first_success_then_many(fakes: RunningFakes) -> None:
    apns = ApnsSender(fake_settings(fakes, push_apns_connections=1))
    try:
        refused = fakes.apns.stats.refused
        devices = [token("ok") for _ in range(60)]
        results = await asyncio.gather(*(apns.send(message(d)) for d in devices))
        assert {r.outcome for r in results} == {Outcome.SENT}
        assert fakes.apns.stats.refused == refused  # the client never exceeded the advertised limit
        (conn,) = apns._pools["production"]._conns
        assert isinstance(conn, Connection)
        assert conn.limit == 200  # min(1000 from the server, our cap)
        assert all(fakes.log.count(d) == 1 for d in devices)
    finally:
        await apns.aclose()


async def test_a_rejection_throttles_to_one_stream_and_nothing_is_lost_or_doubled(
    fakes: RunningFakes,
) -> None:
    apns = ApnsSender(fake_settings(fakes, push_apns_connections=1))
    try:
        await apns.send(message(token("ok")))
        devices = [token("dead" if i % 7 == 3 else "ok") for i in range(150)]
        results = await asyncio.gather(*(apns.send(message(d)) for d in devices))
        for device, result in zip(devices, results, strict=True):
            expected = Outcome.TOKEN_INVALID if device.startswith("dead") else Outcome.SENT
            assert result.outcome is expected, (device, result)
            assert fakes.log.count(device) == (1 if expected is Outcome.SENT else 0)
    finally:
        await apns.aclose()


@pytest.fixture(scope="module")
def unruly_fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFakes]:
    """A server that refuses every 3rd stream and says GOAWAY every 25 streams."""
    yield from fakes_for_module(tmp_path_factory, apns_refuse_every=3, apns_goaway_every=25, latency_ms=2)


async def test_refused_streams_and_goaway_are_resent_at_once_exactly_once(unruly_fakes: RunningFakes) -> None:
    apns = ApnsSender(fake_settings(unruly_fakes))
    try:
        devices = [token("ok") for _ in range(200)]
        results = await asyncio.gather(*(apns.send(message(d)) for d in devices))
        assert [r.reason for r in results if r.outcome is not Outcome.SENT] == []
        assert all(unruly_fakes.log.count(d) == 1 for d in devices)
        stats = unruly_fakes.apns.stats
        assert stats.refused >= 60
        assert stats.goaways >= 4  # 200 streams, one GOAWAY per 25 on each connection
        assert apns._pools["production"].connects > stats.goaways  # each one replaced by a new connection
    finally:
        await apns.aclose()


async def test_a_lost_connection_is_an_ambiguous_retry_and_the_next_message_reconnects(
    sender: ApnsSender, fakes: RunningFakes
) -> None:
    result = await sender.send(message(token("drop")))
    assert result.outcome is Outcome.RETRY
    assert "may have been delivered" in result.reason
    assert (await sender.send(message(token("ok")))).outcome is Outcome.SENT


async def test_no_answer_before_the_timeout_is_an_ambiguous_retry(fakes: RunningFakes) -> None:
    apns = ApnsSender(fake_settings(fakes, push_request_timeout_s=0.3))
    try:
        started = time.monotonic()
        result = await apns.send(message(token("slow")))
        assert time.monotonic() - started < 2
        assert result.outcome is Outcome.RETRY
        assert (await apns.send(message(token("ok")))).outcome is Outcome.SENT  # the connection still works
    finally:
        await apns.aclose()


async def test_an_unreachable_server_is_a_retry(fakes: RunningFakes) -> None:
    apns = ApnsSender(fake_settings(fakes, push_apns_host="127.0.0.1:9"))
    try:
        results = await asyncio.gather(*(apns.send(message(token("ok"))) for _ in range(5)))
        assert {r.outcome for r in results} == {Outcome.RETRY}
        assert all("unavailable" in r.reason for r in results)
    finally:
        await apns.aclose()


async def test_apns_not_configured_is_an_auth_config_error(fakes: RunningFakes) -> None:
    apns = ApnsSender(fake_settings(fakes, push_apns_key_file=None))
    result = await apns.send(message(token("ok")))
    assert result.outcome is Outcome.AUTH_CONFIG
    assert "HABITJOBS_PUSH_APNS_KEY_FILE" in result.reason


def test_behaviour_defaults_match_apns() -> None:
    behaviour = Behaviour()
    assert (behaviour.apns_initial_streams, behaviour.apns_max_streams) == (1, 1000)
