"""The fake OAuth token endpoint and FCM HTTP v1, as a bare ASGI app (served by hypercorn over HTTP/2 + TLS).

Also serves what it and the APNs fake accepted: ``GET /`` (a page) and ``GET /pushes`` (JSON).
"""

from __future__ import annotations

import asyncio
import html
import json
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qs

import jwt

from habitjobs.push.fakes.outcomes import Behaviour, prefix
from habitjobs.push.fakes.pushlog import PushLog, Received

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def _error(status: int, message: str, code: str | None = None, **extra: Any) -> dict[str, Any]:
    details: list[dict[str, Any]] = []
    if code is not None:
        details.append({"@type": FCM_ERROR, "errorCode": code})
    if "violations" in extra:
        details.append({"@type": BAD_REQUEST, "fieldViolations": extra["violations"]})
    body: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": _STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if details:
        body["details"] = details
    return {"error": body}


class FakeFcm:
    def __init__(
        self,
        log: PushLog,
        behaviour: Behaviour,
        *,
        project_id: str,
        client_email: str,
        public_key_pem: bytes,
        token_uri: str,
    ) -> None:
        self.log = log
        self.behaviour = behaviour
        self.quota_window_from: float | None = None
        self.quota_refusals = 0
        self.project_id = project_id
        self.client_email = client_email
        self.public_key_pem = public_key_pem
        self.token_uri = token_uri
        self.access_tokens: dict[str, float] = {}  # token → expiry (epoch seconds)
        self.tokens_issued = 0
        self._revoked_for: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, headers, payload = await self.route(scope["method"], scope["path"], scope, body)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def route(
        self, method: str, path: str, scope: Scope, body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if method == "POST" and path == "/token":
            return self._json(*self.token(body))
        if method == "POST" and path.startswith("/v1/projects/") and path.endswith("/messages:send"):
            project = path[len("/v1/projects/") : -len("/messages:send")]
            auth = dict(scope["headers"]).get(b"authorization", b"").decode()
            status, answer, extra = await self.send(project, auth, body)
            return self._json(status, answer, extra)
        if method == "GET" and path == "/pushes":
            return self._json(200, [asdict(item) for item in self.log.recent()])
        if method == "GET" and path == "/":
            return 200, [(b"content-type", b"text/html; charset=utf-8")], self.page().encode()
        return self._json(404, _error(404, f"no route {method} {path}"))

    @staticmethod
    def _json(
        status: int, document: Any, extra: list[tuple[bytes, bytes]] | None = None
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        headers = [(b"content-type", b"application/json; charset=utf-8"), *(extra or [])]
        return status, headers, json.dumps(document).encode()

    # --- OAuth -------------------------------------------------------------------------------

    def token(self, body: bytes) -> tuple[int, dict[str, Any]]:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": "expected the JWT bearer grant",
            }
        try:
            claims = jwt.decode(
                form.get("assertion", ""), self.public_key_pem, algorithms=["RS256"], audience=self.token_uri
            )
        except jwt.PyJWTError as exc:
            return 400, {"error": "invalid_grant", "error_description": f"Invalid JWT Signature ({exc})"}
        if claims.get("iss") != self.client_email or claims.get("scope") != SCOPE:
            return 400, {"error": "invalid_grant", "error_description": "wrong issuer or scope"}
        access = "ya29.fake-" + secrets.token_urlsafe(24)
        self.access_tokens[access] = time.time() + self.behaviour.access_token_ttl_s
        self.tokens_issued += 1
        return 200, {
            "access_token": access,
            "expires_in": self.behaviour.access_token_ttl_s,
            "token_type": "Bearer",
        }

    # --- messages:send -----------------------------------------------------------------------

    async def send(
        self, project: str, authorization: str, body: bytes
    ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
        self.log.count_request()
        bearer = authorization[7:] if authorization.lower().startswith("bearer ") else ""
        if self.access_tokens.get(bearer, 0) < time.time():
            message = "Request had invalid authentication credentials. Expected OAuth 2 access token."
            return 401, _error(401, message), []
        if project != self.project_id:
            return 403, _error(403, f"Permission denied on project {project}"), []
        try:
            message_doc = json.loads(body)["message"]
            token = str(message_doc["token"])
        except (ValueError, KeyError, TypeError):
            return 400, _error(400, "Invalid JSON payload received."), []
        data = message_doc.get("data") or {}
        for key, value in data.items():
            if not isinstance(value, str):
                violation = {"field": f"message.data[{key}]", "description": "values must be strings"}
                return 400, _error(400, "Invalid value", "INVALID_ARGUMENT", violations=[violation]), []
        if self.behaviour.latency_ms:
            await asyncio.sleep(self.behaviour.latency_ms / 1000)
        if self.behaviour.fcm_quota_window_s:
            now = time.monotonic()
            self.quota_window_from = self.quota_window_from or now
            if now - self.quota_window_from < self.behaviour.fcm_quota_window_s:
                self.quota_refusals += 1
                retry_after = str(self.behaviour.fcm_quota_retry_after_s).encode()
                return 429, _error(429, "Quota exceeded.", "QUOTA_EXCEEDED"), [(b"retry-after", retry_after)]
        kind = prefix(token)
        if kind == "slow":
            await asyncio.sleep(self.behaviour.slow_s)
        elif kind in ("unregistered", "dead"):
            return 404, _error(404, "Requested entity was not found.", "UNREGISTERED"), []
        elif kind == "badtoken":
            return (
                400,
                _error(
                    400, "The registration token is not a valid FCM registration token", "INVALID_ARGUMENT"
                ),
                [],
            )
        elif kind == "badpayload":
            violation = {"field": "message.android.ttl", "description": "Invalid duration"}
            return 400, _error(400, "Invalid value", "INVALID_ARGUMENT", violations=[violation]), []
        elif kind == "mismatch":
            return 403, _error(403, "SenderId mismatch", "SENDER_ID_MISMATCH"), []
        elif kind in ("quota", "toomany"):
            return 429, _error(429, "Quota exceeded.", "QUOTA_EXCEEDED"), [(b"retry-after", b"7")]
        elif kind == "unavailable":
            return (
                503,
                _error(503, "The service is currently unavailable.", "UNAVAILABLE"),
                [(b"retry-after", b"3")],
            )
        elif kind == "internal":
            return 500, _error(500, "Internal error encountered.", "INTERNAL"), []
        elif kind == "thirdparty":
            return 401, _error(401, "Auth error from APNS or Web Push Service", "THIRD_PARTY_AUTH_ERROR"), []
        elif kind == "revoke" and token not in self._revoked_for:
            self._revoked_for.add(token)
            self.access_tokens.clear()
            return 401, _error(401, "Request had invalid authentication credentials."), []
        notification = message_doc.get("notification") or {}
        tag = ((message_doc.get("android") or {}).get("notification") or {}).get("tag", "")
        self.log.add(
            Received(
                provider="fcm",
                env="production",
                token=token,
                collapse_id=str(tag),
                title=str(notification.get("title", "")),
                body=str(notification.get("body", "")),
                data=dict(data),
            )
        )
        return 200, {"name": f"projects/{project}/messages/{uuid.uuid4().hex}"}, []

    # --- the page ----------------------------------------------------------------------------

    def page(self) -> str:
        rows = "".join(
            f"<tr><td>{time.strftime('%H:%M:%S', time.localtime(r.at))}</td><td>{r.provider}/{r.env}</td>"
            f"<td>…{html.escape(r.token[-10:])}</td><td><b>{html.escape(r.title)}</b><br>{html.escape(r.body)}</td>"
            f"<td><code>{html.escape(json.dumps(r.data))}</code></td></tr>"
            for r in self.log.recent(50)
        )
        return (
            "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=2>"
            "<title>habitjobs fake pushes</title><h1>Pushes the fake providers accepted</h1>"
            "<table border=1 cellpadding=4><tr><th>at</th><th>via</th><th>device</th><th>notification</th>"
            f"<th>data</th></tr>{rows}</table>"
        )
