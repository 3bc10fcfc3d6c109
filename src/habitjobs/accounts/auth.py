"""Bearer tokens: HS256 JWTs whose subject is the user id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from habitjobs.config import Settings
from habitjobs.errors import Unauthorized

_ALGORITHM = "HS256"


@dataclass(frozen=True)
class TokenClaims:
    user_id: uuid.UUID
    expires_at: datetime


def mint_token(settings: Settings, user_id: uuid.UUID, *, now: datetime, ttl_s: int | None = None) -> str:
    ttl = settings.jwt_ttl_s if ttl_s is None else ttl_s
    claims = {
        "sub": str(user_id),
        "iss": settings.jwt_issuer,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl)).timestamp()),
    }
    return jwt.encode(claims, settings.jwt_key, algorithm=_ALGORITHM)


def read_token(settings: Settings, token: str) -> TokenClaims:
    """Verify signature, issuer and expiry; raise :class:`Unauthorized` with the reason otherwise."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_key,
            algorithms=[_ALGORITHM],
            issuer=settings.jwt_issuer,
            options={"require": ["sub", "exp", "iat", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired") from None
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"the token is not valid ({exc})") from None
    try:
        user_id = uuid.UUID(str(claims["sub"]))
    except ValueError:
        raise Unauthorized("the token's subject is not a user id") from None
    return TokenClaims(user_id=user_id, expires_at=datetime.fromtimestamp(int(claims["exp"])).astimezone())
