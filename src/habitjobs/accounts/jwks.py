"""An identity provider's signing keys (its JWKS), fetched over HTTP and kept in memory.

A request never waits for the network, except:

- the first token of a provider after the process started (when the start-up prefetch has not finished
  or failed), and
- a token whose key id (``kid``) is not among the cached keys: the provider may have rotated its keys,
  so the set is fetched again — but at most once per ``min_refresh_s`` for such unknown key ids, so a
  stream of tokens with made-up key ids costs one fetch, not one each.

Keys older than ``max_age_s`` are fetched again in the background while the old ones keep answering. A
failed fetch keeps the keys already known (a provider outage does not sign anybody out) and is not tried
again sooner than ``min_refresh_s``. Concurrent requests that need a fetch share one.

Fetching is asynchronous (httpx) — PyJWT's own ``PyJWKClient`` fetches with blocking urllib calls, which
would stop the event loop for the length of the HTTP request; PyJWT still parses the keys and verifies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from habitjobs.errors import Unauthorized, Unavailable

log = logging.getLogger(__name__)

# Larger answers are not key sets (a provider publishes a handful of keys).
_MAX_BODY_BYTES = 1_000_000
# Only asymmetric keys: a provider's published key must never serve as an HMAC secret.
_KEY_TYPES = frozenset({"RSA", "EC"})


class JwksCache:
    """The keys of one issuer. One per provider and process."""

    def __init__(
        self,
        issuer: str,
        jwks_url: str,
        *,
        algorithms: list[str],
        max_age_s: float,
        min_refresh_s: float,
        timeout_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self._jwks_url = jwks_url  # empty until discovered
        self._algorithms = frozenset(algorithms)
        self._max_age_s = max_age_s
        self._min_refresh_s = min_refresh_s
        self._timeout_s = timeout_s
        self._monotonic = monotonic
        self._keys: dict[str | None, jwt.PyJWK] | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None
        self._forced_at: float | None = None
        self._inflight: asyncio.Task[bool] | None = None
        self.fetches = 0  # HTTP fetches of the key set (successful or not): for operators and tests

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The key that signed a token with this ``kid``; raises Unauthorized if the provider has none."""
        if self._keys is None:
            if not await self._refresh_if_allowed():
                raise Unavailable(
                    f"the signing keys of {self.issuer} could not be fetched; retry shortly",
                    retry_after_s=max(1, round(self._min_refresh_s)),
                )
        elif self._monotonic() - self._fetched_at > self._max_age_s:
            self._refresh_in_background()
        found = self._find(kid)
        if found is None and self._inflight is not None and not self._inflight.done():
            # Another request is fetching already (maybe for this very key): wait for it.
            await asyncio.shield(self._inflight)
            found = self._find(kid)
        if found is None and self._may_force():
            self._forced_at = self._monotonic()
            await self._refresh_if_allowed(forced=True)
            found = self._find(kid)
        if found is None:
            raise Unauthorized(f"the token's signing key ({kid!r}) is not one of {self.issuer}'s keys")
        return found

    def prefetch(self) -> None:
        """Fetch the keys now, in the background (at start-up, so that the first request finds them)."""
        self._refresh_in_background()

    async def aclose(self) -> None:
        if self._inflight is not None and not self._inflight.done():
            self._inflight.cancel()
            await asyncio.gather(self._inflight, return_exceptions=True)

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        keys = self._keys or {}
        if kid is None and len(keys) == 1:
            # A provider with a single key may leave the key id out of its tokens.
            return next(iter(keys.values()))
        return keys.get(kid)

    def _may_force(self) -> bool:
        return self._forced_at is None or self._monotonic() - self._forced_at >= self._min_refresh_s

    async def _refresh_if_allowed(self, *, forced: bool = False) -> bool:
        """Fetch (or join the fetch under way); returns whether keys are known afterwards."""
        if self._inflight is None or self._inflight.done():
            recently_failed = (
                self._attempted_at is not None
                and self._attempted_at > self._fetched_at
                and self._monotonic() - self._attempted_at < self._min_refresh_s
            )
            if recently_failed and not forced:
                return self._keys is not None
            self._inflight = asyncio.create_task(self._fetch(), name=f"jwks-{self.issuer}")
        await asyncio.shield(self._inflight)
        return self._keys is not None

    def _refresh_in_background(self) -> None:
        if self._inflight is not None and not self._inflight.done():
            return
        if self._attempted_at is not None and self._monotonic() - self._attempted_at < self._min_refresh_s:
            return
        self._inflight = asyncio.create_task(self._fetch(), name=f"jwks-{self.issuer}")

    async def _fetch(self) -> bool:
        self._attempted_at = self._monotonic()
        self.fetches += 1
        try:
            async with httpx.AsyncClient(timeout=self._timeout_s, follow_redirects=True) as http:
                url = self._jwks_url or await self._discover(http)
                keys = _parse_key_set(await _get_json(http, url), self._algorithms)
        except Exception as exc:
            log.warning("could not fetch the signing keys of %s: %s", self.issuer, exc)
            return False
        self._jwks_url = url
        self._keys = keys
        self._fetched_at = self._monotonic()
        return True

    async def _discover(self, http: httpx.AsyncClient) -> str:
        """``jwks_uri`` from the issuer's OpenID configuration (which must name the same issuer)."""
        document = await _get_json(http, self.issuer.rstrip("/") + "/.well-known/openid-configuration")
        if document.get("issuer") != self.issuer:
            raise ValueError(f"the OpenID configuration names issuer {document.get('issuer')!r}")
        url = document.get("jwks_uri")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ValueError("the OpenID configuration has no jwks_uri")
        if self.issuer.startswith("https://") and not url.startswith("https://"):
            raise ValueError(f"the jwks_uri of an https issuer must be https too ({url})")
        return url


async def _get_json(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    response = await http.get(url, headers={"Accept": "application/json"})
    response.raise_for_status()
    if len(response.content) > _MAX_BODY_BYTES:
        raise ValueError(f"{url} answered {len(response.content)} bytes")
    document = response.json()
    if not isinstance(document, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return document


def _parse_key_set(document: dict[str, Any], algorithms: frozenset[str]) -> dict[str | None, jwt.PyJWK]:
    """The signing keys we may use, by key id. Keys of other kinds or uses are left out, one by one."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ValueError("the key set has no 'keys' list")
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") not in _KEY_TYPES:
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue
        if key.algorithm_name in algorithms:
            keys[key.key_id] = key
    if not keys:
        raise ValueError("the key set holds no usable signing key")
    return keys
