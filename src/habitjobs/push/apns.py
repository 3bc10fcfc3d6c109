"""APNs sender: token-based auth (ES256), a small pool of long-lived HTTP/2 connections per environment.

Contract of :meth:`ApnsSender.send`: one attempt per message, as seen from the queue. Inside it the only
repeats are provably safe ones: a request the server refused unprocessed (REFUSED_STREAM, above GOAWAY) is
resent at once, within the request's deadline; an expired provider token is renewed and the message resent
once; a BadDeviceToken is tried once on the other environment (a development build's token sent to
production, or the reverse).

Only a success from the other environment counts: anything else it answers (403 from a key restricted to
one environment, no answer at all, a 5xx) says nothing about our credentials or about the message, so
the first environment's BadDeviceToken stands — no provider pause, no job retry.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import replace

from hpack import NeverIndexedHeaderTuple

from habitjobs.config import Settings
from habitjobs.push import classify
from habitjobs.push.credentials import CredentialsError, ProviderToken, load_apns_key
from habitjobs.push.h2client import Headers, Http2Pool, Stop, exchange
from habitjobs.push.result import Outcome, PushMessage, SendResult, retry
from habitjobs.push.tls import tls_context

MAX_PAYLOAD_BYTES = 4096
MAX_COLLAPSE_ID_BYTES = 64
ENVIRONMENTS = ("production", "sandbox")


def _split_host(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host:
        return value, 443
    return host, int(port)


def apns_payload(message: PushMessage) -> bytes:
    """The JSON body: our data keys beside ``aps`` (the app reads them to deep-link)."""
    document: dict[str, object] = {
        "aps": {"alert": {"title": message.title, "body": message.body}, "sound": "default"},
    }
    for key, value in message.data.items():
        if key != "aps":
            document[key] = value
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


class ApnsSender:
    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._token: ProviderToken | None = None
        self._context: ssl.SSLContext | None = None
        self._pools: dict[str, Http2Pool] = {}
        self._lock = asyncio.Lock()
        self._static: dict[str, Headers] = {}

    async def _ready(self) -> ProviderToken:
        if self._token is not None:
            return self._token
        async with self._lock:
            if self._token is None:
                s = self._settings
                if not s.push_apns_key_file or not s.push_apns_topic:
                    raise CredentialsError(
                        "APNs is not configured: set HABITJOBS_PUSH_APNS_KEY_FILE, _KEY_ID, _TEAM_ID, _TOPIC"
                    )
                key = await asyncio.to_thread(
                    load_apns_key, s.push_apns_key_file, s.push_apns_key_id, s.push_apns_team_id
                )
                self._context = await asyncio.to_thread(tls_context, s.push_ca_file)
                self._token = ProviderToken(key, clock=self._clock)
        return self._token

    def pool(self, env: str) -> Http2Pool:
        pool = self._pools.get(env)
        if pool is None:
            assert self._context is not None
            address = (
                self._settings.push_apns_sandbox_host if env == "sandbox" else self._settings.push_apns_host
            )
            host, port = _split_host(address)
            pool = Http2Pool(
                host,
                port,
                self._context,
                connections=self._settings.push_apns_connections,
                max_streams=self._settings.push_apns_max_streams,
                connect_timeout_s=self._settings.push_request_timeout_s,
            )
            self._pools[env] = pool
            self._static[env] = [
                (b":method", b"POST"),
                (b":scheme", b"https"),
                (b":authority", pool.authority),
            ]
        return pool

    def _headers(self, env: str, message: PushMessage, jwt: str) -> Headers:
        expiration = str(int(message.expires_at.timestamp()) if message.expires_at else 0).encode()
        return [
            *self._static[env],
            # Values unique to one message are never indexed: they would only churn HPACK's dynamic table.
            NeverIndexedHeaderTuple(b":path", b"/3/device/" + message.token.encode()),
            (b"authorization", b"bearer " + jwt.encode()),
            (b"apns-topic", self._settings.push_apns_topic.encode()),
            (b"apns-push-type", b"alert"),  # priority 10 (at once) is the default for alerts
            NeverIndexedHeaderTuple(b"apns-collapse-id", message.collapse_id.encode()),
            NeverIndexedHeaderTuple(b"apns-expiration", expiration),
        ]

    async def send(self, message: PushMessage, stop: Stop | None = None) -> SendResult:
        try:
            await self._ready()
        except CredentialsError as exc:
            return SendResult(Outcome.AUTH_CONFIG, reason=str(exc), pause_scope="apns")
        body = apns_payload(message)
        if len(body) > MAX_PAYLOAD_BYTES:
            return SendResult(
                Outcome.BAD_REQUEST, reason=f"PayloadTooLarge ({len(body)} bytes, checked locally)"
            )
        if len(message.collapse_id.encode()) > MAX_COLLAPSE_ID_BYTES:
            return SendResult(Outcome.BAD_REQUEST, reason="BadCollapseId (over 64 bytes, checked locally)")
        env = message.apns_env if message.apns_env in ENVIRONMENTS else "production"
        result = await self._send_to(env, message, body, stop)
        if result.outcome is Outcome.TOKEN_INVALID and result.reason == classify.APNS_BAD_DEVICE_TOKEN:
            other = "sandbox" if env == "production" else "production"
            second = await self._send_to(other, message, body, stop)
            if second.outcome is Outcome.SENT:
                return second
            if second.outcome is not Outcome.TOKEN_INVALID:
                return replace(
                    result, reason=f"{result.reason} ({other}: {second.outcome.value}, {second.reason})"
                )
        return result

    async def _send_to(self, env: str, message: PushMessage, body: bytes, stop: Stop | None) -> SendResult:
        token = await self._ready()
        pool = self.pool(env)
        renewed = False
        while True:
            jwt = token.current()
            answer = await exchange(
                pool,
                self._headers(env, message, jwt),
                body,
                timeout_s=self._settings.push_request_timeout_s,
                provider="APNs",
                stop=stop,
            )
            if isinstance(answer, SendResult):
                return answer
            result = classify.classify_apns(answer.status, answer.headers, answer.body)
            if result.reason == classify.APNS_EXPIRED_PROVIDER_TOKEN and not renewed:
                wait_s = token.renew_after_expiry(jwt)
                if wait_s > 0:
                    return retry("ExpiredProviderToken, renewing is not allowed yet", wait_s)
                renewed = True
                continue
            if result.outcome is Outcome.SENT:
                return SendResult(Outcome.SENT, message_id=result.message_id, apns_env=env)
            return result

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()
