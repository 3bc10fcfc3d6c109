"""Access tokens of identity providers, verified against a local provider's JWKS over real HTTP with real
RSA and EC keys: every way a token must be refused, key rotation, and how often the API goes to the
network for keys."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from habitjobs.accounts.auth import Authenticator, mint_token
from habitjobs.api.app import create_app
from habitjobs.clock import SystemClock
from habitjobs.config import OidcProvider
from habitjobs.resources import Resources
from tests.support.contract import CHECKED
from tests.support.oidc import LocalProvider
from tests.support.users import MakeUser


@pytest.fixture
def idp() -> Iterator[LocalProvider]:
    provider = LocalProvider()
    try:
        yield provider
    finally:
        provider.close()


@dataclass
class Api:
    app: FastAPI
    http: httpx.AsyncClient

    async def me(self, token: str) -> httpx.Response:
        return await self.http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})

    async def status_of(self, token: str) -> int:
        return (await self.me(token)).status_code


@asynccontextmanager
async def api(
    resources: Resources,
    *providers: OidcProvider,
    min_refresh_s: float = 30,
    monotonic: Callable[[], float] | None = None,
    **settings: Any,
) -> AsyncIterator[Api]:
    """The API with these identity providers (and the resources' database and Redis); ``monotonic``
    replaces the clock of the key caches' intervals."""
    configured = resources.settings.model_copy(
        update={"oidc_providers": list(providers), "oidc_jwks_min_refresh_s": min_refresh_s, **settings}
    )
    app = create_app(configured, resources=resources)
    if monotonic is not None:
        app.state.authenticator = Authenticator(configured, monotonic=monotonic)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api.test", event_hooks=CHECKED
    ) as http:
        try:
            yield Api(app, http)
        finally:
            await app.state.authenticator.aclose()


def _error(response: httpx.Response) -> str:
    return str(response.json()["error"]["message"])


async def test_rs256_and_es256_tokens_sign_in_one_user_per_issuer_and_subject(
    resources: Resources, idp: LocalProvider
) -> None:
    rsa_key, ec_key = idp.new_key("RS256"), idp.new_key("ES256")
    async with api(resources, idp.config()) as client:
        first = await client.me(idp.token(rsa_key, "auth0|alice", email="alice@example.com"))
        assert first.status_code == 200, first.text
        again = await client.me(idp.token(ec_key, "auth0|alice", email="changed@example.com"))
        assert again.status_code == 200, again.text
        assert again.json()["id"] == first.json()["id"]
        assert again.json()["email"] == "alice@example.com"  # taken on first sight only
        bob = await client.me(idp.token(ec_key, "auth0|bob"))
        assert bob.status_code == 200
        assert bob.json()["id"] != first.json()["id"]
        assert bob.json()["email"] is None  # a token without e-mail makes a user without one
        identities = await client.http.get(
            "/v1/me/identities", headers={"Authorization": f"Bearer {idp.token(rsa_key, 'auth0|alice')}"}
        )
        assert [(i["issuer"], i["subject"]) for i in identities.json()] == [(idp.issuer, "auth0|alice")]


async def test_every_bad_token_is_refused_with_401(resources: Resources, idp: LocalProvider) -> None:
    key = idp.new_key("RS256")
    other = LocalProvider()  # another provider's keys, and tokens naming our issuer signed with them
    try:
        stranger = other.new_key("RS256")
        async with api(resources, idp.config(), oidc_leeway_s=30) as client:
            good = idp.token(key, "user-1")
            assert await client.status_of(good) == 200
            now = int(time.time())
            refused = {
                "wrong audience": idp.token(key, "user-1", aud="https://another-api.example"),
                "no audience": idp.token(key, "user-1", aud=None),
                "expired": idp.token(key, "user-1", exp=now - 31, iat=now - 600),
                "no expiry": idp.token(key, "user-1", exp=None),
                "issued in the future": idp.token(key, "user-1", iat=now + 3600, exp=now + 7200),
                "wrong issuer": idp.token(key, "user-1", iss="https://evil.example/"),
                "no subject": idp.token(key, "user-1", sub=None),
                "alg none": idp.unsigned(key, "user-1"),
                "HS256 with the public key as secret": idp.hs256_with_public_key(key, "user-1"),
                "signed by another key under our kid": other.token(
                    stranger, "user-1", iss=idp.issuer, aud=idp.audience, headers={"kid": key.kid}
                ),
                "tampered payload": good.split(".")[0]
                + "."
                + idp.token(key, "admin").split(".")[1]
                + "."
                + good.split(".")[2],
                "not a JWT": "not.a.jwt",
                "exp = 10^20": idp.signed_raw(
                    key, json.dumps({"iss": idp.issuer, "sub": "user-1", "aud": idp.audience, "exp": 10**20})
                ),
                "exp = 1e400": idp.signed_raw(
                    key, f'{{"iss": "{idp.issuer}", "sub": "user-1", "aud": "{idp.audience}", "exp": 1e400}}'
                ),
                "exp a string": idp.token(key, "user-1", exp="tomorrow"),
            }
            for reason, token in refused.items():
                answer = await client.me(token)
                assert answer.status_code == 401, (reason, answer.text)
                assert answer.json()["error"]["code"] == "unauthorized", reason
                assert answer.headers["www-authenticate"] == "Bearer", reason
            within_leeway = idp.token(key, "user-1", exp=now - 5, iat=now - 600)
            assert await client.status_of(within_leeway) == 200
            assert "expired" in _error(await client.me(refused["expired"]))
            assert "audience" in _error(await client.me(refused["wrong audience"])).lower()
            assert "'none'" in _error(await client.me(refused["alg none"]))
            assert "'HS256'" in _error(await client.me(refused["HS256 with the public key as secret"]))
    finally:
        other.close()


async def test_this_servers_own_token_with_an_absurd_expiry_is_a_401_not_a_500(
    client: httpx.AsyncClient, resources: Resources, make_user: MakeUser
) -> None:
    import jwt

    user = await make_user()
    now = int(time.time())
    for exp in (10**20, -1, 0):
        claims = {"sub": str(user.id), "iss": resources.settings.jwt_issuer, "iat": now, "exp": exp}
        token = jwt.encode(claims, resources.settings.jwt_key, algorithm="HS256")
        answer = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, (exp, answer.text)


async def test_hs256_tokens_work_only_where_enabled(resources: Resources, make_user: MakeUser) -> None:
    user = await make_user()
    async with api(resources) as enabled:  # test: on by default
        assert await enabled.status_of(user.token) == 200
    async with api(resources, jwt_hs256=False) as disabled:
        answer = await disabled.me(user.token)
        assert answer.status_code == 401
        assert "HABITJOBS_JWT_HS256" in _error(answer)
    async with api(resources, env="prod") as prod:  # prod: off unless enabled
        assert await prod.status_of(user.token) == 401


async def test_an_unknown_key_id_refreshes_the_keys_at_most_once_per_interval(
    resources: Resources, idp: LocalProvider
) -> None:
    key = idp.new_key("RS256")
    async with api(resources, idp.config(), min_refresh_s=3600) as client:
        assert await client.status_of(idp.token(key, "user-1")) == 200
        assert idp.key_fetches == 1
        for _ in range(20):  # a key the API has not seen: the keys are fetched again, once
            assert await client.status_of(idp.token(key, "user-1", headers={"kid": "made-up"})) == 401
        assert idp.key_fetches == 2
        # A real rotation inside the interval is not seen before the interval ends…
        fresh = idp.new_key("ES256")
        assert await client.status_of(idp.token(fresh, "user-1")) == 401
        assert idp.key_fetches == 2
        # …while the known key keeps working without any fetch.
        for _ in range(20):
            assert await client.status_of(idp.token(key, "user-1")) == 200
        assert idp.key_fetches == 2


async def test_after_the_interval_an_unknown_key_fetches_again_and_old_keys_refresh_in_the_background(
    resources: Resources, idp: LocalProvider
) -> None:
    key = idp.new_key("RS256")
    elapsed = [0.0]
    clock = api(
        resources, idp.config(), min_refresh_s=30, oidc_jwks_max_age_s=600, monotonic=lambda: elapsed[0]
    )
    async with clock as client:
        assert await client.status_of(idp.token(key, "u")) == 200
        assert await client.status_of(idp.token(key, "u", headers={"kid": "unknown-1"})) == 401
        assert idp.key_fetches == 2
        elapsed[0] = 29.0
        assert await client.status_of(idp.token(key, "u", headers={"kid": "unknown-2"})) == 401
        assert idp.key_fetches == 2
        elapsed[0] = 31.0
        assert await client.status_of(idp.token(key, "u", headers={"kid": "unknown-3"})) == 401
        assert idp.key_fetches == 3
        # Past the keys' max age: the request is answered from the cache while they are fetched again.
        idp.hang.set()
        elapsed[0] = 700.0
        assert await client.status_of(idp.token(key, "v")) == 200
        deadline = time.monotonic() + 10
        while idp.key_fetches < 4:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        idp.hang.clear()


async def test_no_network_call_per_request(resources: Resources, idp: LocalProvider) -> None:
    key = idp.new_key("ES256")
    async with api(resources, idp.config()) as client:
        statuses = await asyncio.gather(
            *(client.status_of(idp.token(key, f"user-{n % 5}")) for n in range(60))
        )
        assert set(statuses) == {200}
        assert idp.key_fetches == 1  # the first requests shared one fetch
        discovery = idp.requests["/realms/test/.well-known/openid-configuration"]
        assert discovery == 1


async def test_a_key_rotation_mid_run_fails_no_request(resources: Resources, idp: LocalProvider) -> None:
    old = idp.new_key("RS256")
    signer = {"key": old}
    failures: list[str] = []
    answered: list[str] = []  # the key id of every answered request
    done = asyncio.Event()
    async with api(resources, idp.config(), min_refresh_s=3600) as client:

        async def phone(n: int) -> None:
            while not done.is_set():
                key = signer["key"]
                answer = await client.me(idp.token(key, f"user-{n}"))
                if answer.status_code != 200:
                    failures.append(answer.text)
                answered.append(key.kid)
                await asyncio.sleep(0)  # a refused request may never wait: let the test's checks run

        async def until(condition: Any, what: str) -> None:
            deadline = time.monotonic() + 20
            while not condition():
                assert time.monotonic() < deadline, what
                await asyncio.sleep(0.005)

        phones = [asyncio.create_task(phone(n)) for n in range(4)]
        try:
            await until(lambda: answered.count(old.kid) >= 20, "requests under the old key")
            new = idp.new_key("ES256")  # the provider publishes a new key and signs with it at once
            signer["key"] = new
            await until(lambda: answered.count(new.kid) >= 40, "requests under the new key")
        finally:
            done.set()
            await asyncio.gather(*phones)
    assert failures == []
    assert idp.key_fetches == 2  # the first token under the new key made the API look once more


async def test_keys_are_discovered_or_configured(resources: Resources, idp: LocalProvider) -> None:
    key = idp.new_key("RS256")
    direct = LocalProvider(discovery=False)
    try:
        direct_key = direct.new_key("ES256")
        async with api(resources, idp.config(), direct.config()) as client:
            assert await client.status_of(idp.token(key, "a")) == 200
            assert await client.status_of(direct.token(direct_key, "a")) == 200
        assert idp.requests["/realms/test/.well-known/openid-configuration"] == 1
        assert direct.requests["/realms/test/.well-known/openid-configuration"] == 0
        assert direct.key_fetches == 1
    finally:
        direct.close()


async def test_a_provider_outage_keeps_known_keys_and_answers_503_until_keys_are_known(
    resources: Resources, idp: LocalProvider, make_user: MakeUser
) -> None:
    key = idp.new_key("RS256")
    local_user = await make_user()
    idp.fail_status = 503
    async with api(resources, idp.config(), min_refresh_s=0.2, oidc_http_timeout_s=1) as client:
        down = await client.me(idp.token(key, "user-1"))
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "unavailable"
        assert await client.status_of(local_user.token) == 200  # this server's own tokens do not care
        idp.fail_status = None
        deadline = time.monotonic() + 10
        while await client.status_of(idp.token(key, "user-1")) != 200:  # after the retry interval
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        idp.fail_status = 500
        idp.hang.set()  # the provider now hangs, then fails: known keys keep working meanwhile
        fetches = idp.key_fetches
        for n in range(10):
            assert await client.status_of(idp.token(key, f"user-{n}")) == 200
        assert idp.key_fetches == fetches
        idp.hang.clear()


async def test_cognito_access_tokens_carry_the_audience_in_client_id(
    resources: Resources, idp: LocalProvider
) -> None:
    key = idp.new_key("RS256")
    config = idp.config(audience=["app-client-1"], audience_claim="client_id")
    async with api(resources, config) as client:
        cognito = idp.token(key, "user-1", aud=None, client_id="app-client-1", token_use="access")
        assert await client.status_of(cognito) == 200
        assert await client.status_of(idp.token(key, "user-1", aud=None, client_id="another")) == 401


async def test_same_email_from_two_providers_is_two_users_until_explicitly_linked(
    resources: Resources, idp: LocalProvider
) -> None:
    other = LocalProvider(audience="firebase-project")
    try:
        a_key, b_key = idp.new_key("RS256"), other.new_key("ES256")
        async with api(resources, idp.config(), other.config()) as client:
            a_token = idp.token(a_key, "a-sub", email="sam@example.com")
            b_token = other.token(b_key, "b-sub", email="sam@example.com", email_verified=True)
            a_user = (await client.me(a_token)).json()
            b_user = (await client.me(b_token)).json()
            assert a_user["id"] != b_user["id"]  # the same e-mail never joins accounts

            link = await client.http.post(
                "/v1/me/identities",
                headers={"Authorization": f"Bearer {a_token}"},
                json={"token": b_token},
            )
            assert link.status_code == 409  # b-sub signs in another account already
            c_token = other.token(b_key, "c-sub")
            headers = {"Authorization": f"Bearer {a_token}"}
            linked = await client.http.post("/v1/me/identities", headers=headers, json={"token": c_token})
            assert linked.status_code == 201, linked.text
            again = await client.http.post("/v1/me/identities", headers=headers, json={"token": c_token})
            assert again.status_code == 200
            assert (await client.me(c_token)).json()["id"] == a_user["id"]  # now one user, two ways in

            bad = await client.http.post(
                "/v1/me/identities", headers=headers, json={"token": other.unsigned(b_key, "d-sub")}
            )
            assert bad.status_code == 401
            local = mint_token(resources.settings, uuid.UUID(a_user["id"]), now=SystemClock().now())
            assert (
                await client.http.post("/v1/me/identities", headers=headers, json={"token": local})
            ).status_code == 401

            identities = (await client.http.get("/v1/me/identities", headers=headers)).json()
            assert {i["subject"] for i in identities} == {"a-sub", "c-sub"}
            first = next(i for i in identities if i["subject"] == "a-sub")
            assert (
                await client.http.delete(f"/v1/me/identities/{first['id']}", headers=headers)
            ).status_code == 204
            assert (await client.me(a_token)).status_code == 200  # a-sub is now a new, empty account
            assert (await client.me(a_token)).json()["id"] != a_user["id"]
            c_headers = {"Authorization": f"Bearer {c_token}"}
            [last] = (await client.http.get("/v1/me/identities", headers=c_headers)).json()
            gone = await client.http.delete(f"/v1/me/identities/{last['id']}", headers=c_headers)
            assert gone.status_code == 409  # the last way in stays
            foreign = await client.http.delete(f"/v1/me/identities/{uuid.uuid4()}", headers=c_headers)
            assert foreign.status_code == 404
    finally:
        other.close()


async def test_a_token_for_a_locked_account_is_refused(resources: Resources, idp: LocalProvider) -> None:
    key = idp.new_key("ES256")
    async with api(resources, idp.config()) as client:
        token = idp.token(key, "leaving")
        headers = {"Authorization": f"Bearer {token}"}
        assert await client.status_of(token) == 200
        deletion = await client.http.delete("/v1/me", headers=headers)
        assert deletion.status_code == 202, deletion.text
        locked = await client.me(token)
        assert locked.status_code == 401
        assert "being deleted" in _error(locked)
        assert (await client.http.get("/v1/habits", headers=headers)).status_code == 401
        assert (await client.http.get("/v1/me/deletion", headers=headers)).status_code == 200
