"""Provider credentials: FCM's service account (RS256 assertion for the OAuth bearer grant) and APNs'
ES256 provider token.

Files are read once, when a sender first needs them (from a thread: the worker's loop never waits on disk).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_TTL_S = 3600

# APNs: a provider token is accepted for 60 minutes; a new one more often than every 20 minutes is refused
# (429 TooManyProviderTokenUpdates). Renew at 50.
APNS_TOKEN_RENEW_S = 50 * 60
APNS_TOKEN_MIN_AGE_S = 20 * 60


class CredentialsError(ValueError):
    """A key file is missing or unusable; the message names the setting to fix."""


@dataclass(frozen=True)
class ServiceAccount:
    project_id: str
    client_email: str
    token_uri: str
    private_key_id: str
    private_key: RSAPrivateKey


def load_service_account(path: str) -> ServiceAccount:
    """Read a Google service-account JSON key file (blocking: call from a thread)."""
    try:
        raw: dict[str, Any] = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CredentialsError(
            f"HABITJOBS_PUSH_FCM_CREDENTIALS_FILE {path!r} is not readable JSON: {exc}"
        ) from exc
    missing = [k for k in ("client_email", "private_key", "token_uri") if not raw.get(k)]
    if missing:
        raise CredentialsError(f"service account file {path!r} lacks {', '.join(missing)}")
    key = load_pem_private_key(str(raw["private_key"]).encode(), password=None)
    if not isinstance(key, RSAPrivateKey):
        raise CredentialsError(f"service account file {path!r}: private_key is not an RSA key")
    return ServiceAccount(
        project_id=str(raw.get("project_id") or ""),
        client_email=str(raw["client_email"]),
        token_uri=str(raw["token_uri"]),
        private_key_id=str(raw.get("private_key_id") or ""),
        private_key=key,
    )


def fcm_assertion(account: ServiceAccount, now_s: float) -> str:
    """The signed JWT exchanged at ``token_uri`` for an access token (RFC 7523 bearer grant)."""
    issued = int(now_s)
    claims = {
        "iss": account.client_email,
        "scope": FCM_SCOPE,
        "aud": account.token_uri,
        "iat": issued,
        "exp": issued + ASSERTION_TTL_S,
    }
    headers = {"kid": account.private_key_id} if account.private_key_id else None
    return jwt.encode(claims, account.private_key, algorithm="RS256", headers=headers)


@dataclass(frozen=True)
class ApnsKey:
    key_id: str
    team_id: str
    private_key: EllipticCurvePrivateKey


def load_apns_key(path: str, key_id: str, team_id: str) -> ApnsKey:
    """Read an APNs auth key (.p8, PKCS#8 P-256) (blocking: call from a thread)."""
    if not key_id or not team_id:
        raise CredentialsError("HABITJOBS_PUSH_APNS_KEY_ID and HABITJOBS_PUSH_APNS_TEAM_ID must be set")
    try:
        key = load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise CredentialsError(
            f"HABITJOBS_PUSH_APNS_KEY_FILE {path!r} is not a readable .p8 key: {exc}"
        ) from exc
    if not isinstance(key, EllipticCurvePrivateKey):
        raise CredentialsError(f"{path!r} is not an EC (P-256) key")
    return ApnsKey(key_id=key_id, team_id=team_id, private_key=key)


class ProviderToken:
    """The APNs provider token of this process: one at a time, renewed every 50 minutes."""

    def __init__(self, key: ApnsKey, *, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._clock = clock
        self._token = ""
        self._issued_s = 0.0

    def _issue(self, now_s: float) -> str:
        self._issued_s = now_s
        self._token = jwt.encode(
            {"iss": self._key.team_id, "iat": int(now_s)},
            self._key.private_key,
            algorithm="ES256",
            headers={"kid": self._key.key_id},
        )
        return self._token

    def current(self) -> str:
        now = self._clock()
        if not self._token or now - self._issued_s >= APNS_TOKEN_RENEW_S:
            return self._issue(now)
        return self._token

    def renew_after_expiry(self, rejected: str) -> float:
        """APNs said ``rejected`` expired. Renew it if allowed; returns 0 when a new token is ready, else
        the seconds until renewing is allowed (APNs refuses renewals within 20 minutes)."""
        if rejected != self._token:
            return 0.0  # somebody renewed it already
        age = self._clock() - self._issued_s
        if age < APNS_TOKEN_MIN_AGE_S:
            return APNS_TOKEN_MIN_AGE_S - age
        self._issue(self._clock())
        return 0.0
