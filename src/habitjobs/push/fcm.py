"""FCM HTTP v1 sender over HTTP/2, with its OAuth access token.

The access token comes from the service account's RS256 assertion (bearer grant), is cached for its
lifetime and renewed five minutes early in the background, so sending never waits for it except the first
time. A 401 without an FcmError means the token was revoked or expired early: it is renewed and the
message resent once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from habitjobs.config import Settings
from habitjobs.push import classify
from habitjobs.push.credentials import (
    JWT_BEARER_GRANT,
    CredentialsError,
    ServiceAccount,
    fcm_assertion,
    load_service_account,
)
from habitjobs.push.h2client import Headers, Http2Pool, Stop, exchange
from habitjobs.push.result import Outcome, PushMessage, SendResult, retry
from habitjobs.push.tls import tls_context

log = logging.getLogger(__name__)

RENEW_EARLY_S = 300.0
# FCM allows ~100 concurrent streams per connection.
STREAMS_PER_CONNECTION = 100
# Below this much remaining life the token is not used any more; callers wait for the new one.
MIN_LIFE_S = 30.0


class TokenRejected(Exception):
    """The token endpoint refused our assertion: the credentials are wrong (AUTH_CONFIG)."""


class TokenUnavailable(Exception):
    """The token endpoint could not be reached or failed: try later (RETRY)."""


class AccessTokens:
    """The OAuth access token of one service account; one refresh at a time, shared by all senders."""

    def __init__(
        self, account: ServiceAccount, http: httpx.AsyncClient, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._account = account
        self._http = http
        self._clock = clock
        self._token = ""
        self._expires_s = 0.0
        self._refreshing: asyncio.Task[str] | None = None

    async def get(self) -> str:
        remaining = self._expires_s - self._clock()
        if self._token and remaining > RENEW_EARLY_S:
            return self._token
        if self._token and remaining > MIN_LIFE_S:
            self._start_refresh()  # renew in the background, keep using the current one meanwhile
            return self._token
        return await self.refresh()

    async def refresh(self, rejected: str | None = None) -> str:
        """A new token (the provider refused ``rejected``); several callers share one fetch."""
        if rejected is not None and self._token and rejected != self._token:
            return self._token
        return await asyncio.shield(self._start_refresh())

    def _start_refresh(self) -> asyncio.Task[str]:
        if self._refreshing is None:
            self._refreshing = asyncio.get_running_loop().create_task(self._fetch())
            self._refreshing.add_done_callback(self._refreshed)
        return self._refreshing

    def _refreshed(self, task: asyncio.Task[str]) -> None:
        self._refreshing = None
        if not task.cancelled() and task.exception() is not None:
            log.warning("FCM access token refresh failed: %s", task.exception())

    async def _fetch(self) -> str:
        # RSA signing costs about a millisecond: off the loop, like every other blocking step.
        assertion = await asyncio.to_thread(fcm_assertion, self._account, self._clock())
        try:
            response = await self._http.post(
                self._account.token_uri, data={"grant_type": JWT_BEARER_GRANT, "assertion": assertion}
            )
        except httpx.HTTPError as exc:
            raise TokenUnavailable(f"token endpoint unreachable: {exc!r}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise TokenUnavailable(f"token endpoint answered {response.status_code}")
        try:
            body: dict[str, Any] = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not body.get("access_token"):
            raise TokenRejected(
                f"token endpoint refused the service account ({response.status_code} "
                f"{body.get('error', '')}: {body.get('error_description', '')})"
            )
        self._token = str(body["access_token"])
        self._expires_s = self._clock() + float(body.get("expires_in") or 3600)
        return self._token


def fcm_body(message: PushMessage, now: datetime) -> bytes:
    """The ``messages:send`` body: notification, string-only data, Android tag and APNs collapse id."""
    android: dict[str, Any] = {"priority": "high", "notification": {"tag": message.collapse_id}}
    apns_headers = {"apns-collapse-id": message.collapse_id, "apns-priority": "10"}
    if message.expires_at is not None:
        android["ttl"] = f"{max(0, int((message.expires_at - now).total_seconds()))}s"
        apns_headers["apns-expiration"] = str(int(message.expires_at.timestamp()))
    document = {
        "message": {
            "token": message.token,
            "notification": {"title": message.title, "body": message.body},
            "data": message.data,
            "android": android,
            "apns": {"headers": apns_headers, "payload": {"aps": {"sound": "default"}}},
        }
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


class FcmSender:
    """``messages:send`` over our HTTP/2 client (:mod:`habitjobs.push.h2client`), the token over httpx.

    The sends went through httpx first; its HTTP/2 stack (httpcore + h2) cost ~5× the CPU per request of
    our client, which capped one worker far below the push target (docs/benchmarks.md). The token
    endpoint is called once an hour and stays on httpx.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._http: httpx.AsyncClient | None = None
        self._tokens: AccessTokens | None = None
        self._pool: Http2Pool | None = None
        self._static: Headers = []
        self._lock = asyncio.Lock()

    async def _ready(self) -> tuple[Http2Pool, AccessTokens]:
        if self._pool is None or self._tokens is None:
            async with self._lock:
                if self._pool is None or self._tokens is None:
                    s = self._settings
                    if not s.push_fcm_credentials_file:
                        raise CredentialsError(
                            "FCM is not configured: set HABITJOBS_PUSH_FCM_CREDENTIALS_FILE"
                        )
                    account = await asyncio.to_thread(load_service_account, s.push_fcm_credentials_file)
                    project = s.push_fcm_project_id or account.project_id
                    if not project:
                        raise CredentialsError("set HABITJOBS_PUSH_FCM_PROJECT_ID (the key file names none)")
                    context = await asyncio.to_thread(tls_context, s.push_ca_file)
                    endpoint = urlsplit(s.push_fcm_endpoint)
                    if endpoint.scheme != "https" or not endpoint.hostname:
                        raise CredentialsError(
                            f"HABITJOBS_PUSH_FCM_ENDPOINT must be an https URL, not {s.push_fcm_endpoint!r}"
                        )
                    pool = Http2Pool(
                        endpoint.hostname,
                        endpoint.port or 443,
                        context,
                        connections=s.push_fcm_max_connections,
                        max_streams=STREAMS_PER_CONNECTION,
                        connect_timeout_s=s.push_request_timeout_s,
                    )
                    path = f"{endpoint.path.rstrip('/')}/v1/projects/{project}/messages:send"
                    self._static = [
                        (b":method", b"POST"),
                        (b":scheme", b"https"),
                        (b":authority", pool.authority),
                        (b":path", path.encode()),
                        (b"content-type", b"application/json"),
                    ]
                    self._http = httpx.AsyncClient(
                        http2=True, verify=context, timeout=httpx.Timeout(s.push_request_timeout_s)
                    )
                    self._tokens = AccessTokens(account, self._http, clock=self._clock)
                    self._pool = pool
        return self._pool, self._tokens

    @property
    def tokens(self) -> AccessTokens | None:
        return self._tokens

    async def send(self, message: PushMessage, stop: Stop | None = None) -> SendResult:
        try:
            pool, tokens = await self._ready()
            access = await tokens.get()
        except CredentialsError as exc:
            return SendResult(Outcome.AUTH_CONFIG, reason=str(exc), pause_scope="fcm")
        except TokenRejected as exc:
            return SendResult(Outcome.AUTH_CONFIG, reason=str(exc), pause_scope="fcm")
        except TokenUnavailable as exc:
            return retry(str(exc), 5.0)
        return await self._post(pool, tokens, access, fcm_body(message, datetime.now(UTC)), stop)

    async def _post(
        self, pool: Http2Pool, tokens: AccessTokens, access: str, body: bytes, stop: Stop | None = None
    ) -> SendResult:
        renewed = False
        while True:
            headers: Headers = [*self._static, (b"authorization", b"Bearer " + access.encode())]
            answer = await exchange(
                pool,
                headers,
                body,
                timeout_s=self._settings.push_request_timeout_s,
                provider="FCM",
                stop=stop,
            )
            if isinstance(answer, SendResult):
                return answer
            result = classify.classify_fcm(answer.status, answer.headers, answer.body, datetime.now(UTC))
            if not renewed and classify.fcm_wants_new_token(result):
                renewed = True
                try:
                    access = await tokens.refresh(rejected=access)
                except TokenRejected as exc:
                    return SendResult(Outcome.AUTH_CONFIG, reason=str(exc), pause_scope="fcm")
                except TokenUnavailable as exc:
                    return retry(str(exc), 5.0)
                continue
            return result

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
