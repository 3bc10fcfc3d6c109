"""Bearer tokens: this server's own HS256 tokens (`habitjobs token`), and identity providers' access tokens.

A token is routed by its (not yet verified) ``iss`` claim, then verified with that issuer's rules only:

- ``HABITJOBS_JWT_ISSUER`` (default ``habitjobs``): HS256 with ``HABITJOBS_JWT_SECRET``, subject = user id;
  only where ``HABITJOBS_JWT_HS256`` allows it (by default in dev and test, never silently in prod).
- a configured identity provider: one of its asymmetric algorithms (RS256, ES256, …), the key its JWKS
  publishes under the token's ``kid``, its audience, expiry with a small leeway. ``alg: none``, HS256, and
  every algorithm the provider was not configured with are refused before any key is looked at, so a
  provider's public key can never be used as an HMAC secret.
- anything else: 401.

Verified tokens are remembered for a few minutes (at most until they expire), so a client sending the
same token again costs a dictionary lookup, not a signature check.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from jwt.types import Options

from habitjobs.accounts.jwks import JwksCache
from habitjobs.clock import Clock, SystemClock
from habitjobs.config import OidcProvider, Settings
from habitjobs.errors import Unauthorized

_LOCAL_ALGORITHM = "HS256"
# A verified token is checked again after this long (a key its provider withdrew stops working).
_RECHECK_S = 300.0
_MAX_REMEMBERED = 10_000
# Expiry times past this (2100-01-01) are not real expiry times: such a token is refused.
_LATEST_EXPIRY = 4_102_444_800
_MAX_SUBJECT_CHARS = 255
_MAX_EMAIL_CHARS = 320


@dataclass(frozen=True)
class VerifiedToken:
    issuer: str
    subject: str
    expires_at: datetime
    email: str | None = None
    # Set for this server's own tokens, whose subject is the user id.
    user_id: uuid.UUID | None = None


def mint_token(settings: Settings, user_id: uuid.UUID, *, now: datetime, ttl_s: int | None = None) -> str:
    ttl = settings.jwt_ttl_s if ttl_s is None else ttl_s
    claims = {
        "sub": str(user_id),
        "iss": settings.jwt_issuer,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl)).timestamp()),
    }
    return jwt.encode(claims, settings.jwt_key, algorithm=_LOCAL_ALGORITHM)


def _expiry(value: Any, now: float, leeway_s: float) -> datetime:
    """The ``exp`` claim as an instant; refused when it has passed (beyond the leeway) or is no real time.

    Checked here rather than by PyJWT so that it is compared with the authenticator's clock.
    """
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        raise Unauthorized("the token's expiry (exp) is not a number") from None
    if not math.isfinite(seconds) or not 0 < seconds <= _LATEST_EXPIRY:
        raise Unauthorized("the token's expiry (exp) is not a plausible time")
    if seconds <= now - leeway_s:
        raise Unauthorized("the token has expired")
    return datetime.fromtimestamp(seconds, UTC)


def _decode(
    token: str, key: Any, *, require: list[str], verify_aud: bool = True, **checks: Any
) -> dict[str, Any]:
    """Signature and claims; the expiry is left to :func:`_expiry` (our clock, our bounds)."""
    options: Options = {"require": require, "verify_aud": verify_aud, "verify_exp": False}
    try:
        claims: dict[str, Any] = jwt.decode(token, key, options=options, **checks)
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError) as exc:
        raise Unauthorized(f"the token is not valid ({exc})") from None
    return claims


def read_local_token(settings: Settings, token: str, now: float) -> VerifiedToken:
    """This server's own HS256 token: signature, issuer, expiry; the subject is the user id."""
    if not settings.hs256_enabled:
        raise Unauthorized(
            "this server's own tokens are not accepted here (HABITJOBS_JWT_HS256); "
            "sign in through the identity provider"
        )
    claims = _decode(
        token,
        settings.jwt_key,
        algorithms=[_LOCAL_ALGORITHM],
        issuer=settings.jwt_issuer,
        require=["sub", "exp", "iat", "iss"],
    )
    try:
        user_id = uuid.UUID(str(claims["sub"]))
    except ValueError:
        raise Unauthorized("the token's subject is not a user id") from None
    expires_at = _expiry(claims["exp"], now, 0)
    return VerifiedToken(settings.jwt_issuer, str(user_id), expires_at, user_id=user_id)


class _Provider:
    def __init__(self, config: OidcProvider, keys: JwksCache, leeway_s: float) -> None:
        self.config = config
        self.keys = keys
        self.leeway_s = leeway_s

    async def verify(self, token: str, header: dict[str, Any], now: float) -> VerifiedToken:
        config = self.config
        algorithm = header.get("alg")
        if algorithm not in config.algorithms:
            raise Unauthorized(f"tokens of {config.issuer} signed with {algorithm!r} are not accepted")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized("the token's key id (kid) is not a string")
        key = await self.keys.key(kid)
        if key.algorithm_name != algorithm:
            raise Unauthorized(f"the token says {algorithm!r} but its key is for {key.algorithm_name!r}")
        standard_audience = config.audience_claim == "aud"
        claims = _decode(
            token,
            key,
            algorithms=[key.algorithm_name],  # from the key, never from the token
            issuer=config.issuer,
            audience=config.audience if standard_audience else None,
            leeway=self.leeway_s,
            require=["exp", "iss", "sub"],
            verify_aud=standard_audience,
        )
        if not standard_audience and claims.get(config.audience_claim) not in config.audience:
            raise Unauthorized(f"the token's {config.audience_claim} is not this API's audience")
        subject = claims["sub"]
        if not isinstance(subject, str) or not 0 < len(subject) <= _MAX_SUBJECT_CHARS:
            raise Unauthorized("the token's subject (sub) is not a short string")
        expires_at = _expiry(claims["exp"], now, self.leeway_s)
        return VerifiedToken(config.issuer, subject, expires_at, email=_email(claims))


def _email(claims: dict[str, Any]) -> str | None:
    """The e-mail the provider vouches for, if any (contact data only: it never identifies the user)."""
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > _MAX_EMAIL_CHARS:
        return None
    if claims.get("email_verified") is False:
        return None
    return email


class Authenticator:
    """Verifies bearer tokens for one API process (see the module)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: what token expiry is compared with (the system's time unless a test moves it);
        ``monotonic``: the key caches' intervals."""
        self._settings = settings
        self._clock = clock or SystemClock()
        self._providers = {
            p.issuer: _Provider(
                p,
                JwksCache(
                    p.issuer,
                    p.jwks_url,
                    algorithms=list(p.algorithms),
                    max_age_s=settings.oidc_jwks_max_age_s,
                    min_refresh_s=settings.oidc_jwks_min_refresh_s,
                    timeout_s=settings.oidc_http_timeout_s,
                    monotonic=monotonic,
                ),
                settings.oidc_leeway_s,
            )
            for p in settings.identity_providers
        }
        self._verified: dict[str, tuple[VerifiedToken, float]] = {}

    def start(self) -> None:
        """Fetch every provider's keys in the background (call from a running event loop)."""
        for provider in self._providers.values():
            provider.keys.prefetch()

    def key_cache(self, issuer: str) -> JwksCache:
        return self._providers[issuer].keys

    async def verify(self, token: str) -> VerifiedToken:
        """The verified token, or :class:`Unauthorized` with the reason (503 while keys are unreachable)."""
        now = self._clock.now().timestamp()
        remembered = self._verified.get(token)
        if remembered is not None and now < remembered[1]:
            return remembered[0]
        verified = await self._verify(token, now)
        if len(self._verified) >= _MAX_REMEMBERED:
            self._verified.clear()
        self._verified[token] = (verified, min(verified.expires_at.timestamp(), now + _RECHECK_S))
        return verified

    async def verify_provider_token(self, token: str) -> VerifiedToken:
        """Like :meth:`verify`, for a token that must come from an identity provider (account links)."""
        verified = await self.verify(token)
        if verified.user_id is not None:
            raise Unauthorized("this is this server's own token, not an identity provider's")
        return verified

    async def _verify(self, token: str, now: float) -> VerifiedToken:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise Unauthorized(f"the token is not a JWT ({exc})") from None
        issuer = unverified.get("iss")
        if issuer == self._settings.jwt_issuer:
            return read_local_token(self._settings, token, now)
        provider = self._providers.get(issuer) if isinstance(issuer, str) else None
        if provider is None:
            raise Unauthorized(f"tokens of issuer {issuer!r} are not accepted here")
        return await provider.verify(token, header, now)

    async def aclose(self) -> None:
        await asyncio.gather(*(p.keys.aclose() for p in self._providers.values()))
