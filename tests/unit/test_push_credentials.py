"""Provider credentials: the FCM assertion's claims and the APNs provider token's renewal rules."""

import json
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from habitjobs.push.credentials import (
    APNS_TOKEN_MIN_AGE_S,
    APNS_TOKEN_RENEW_S,
    FCM_SCOPE,
    CredentialsError,
    ProviderToken,
    fcm_assertion,
    load_apns_key,
    load_service_account,
)


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_the_fcm_assertion_is_an_rs256_jwt_for_the_token_endpoint(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "sa.json"
    path.write_text(
        json.dumps(
            {
                "project_id": "p1",
                "client_email": "svc@p1.iam.gserviceaccount.com",
                "private_key_id": "kid-1",
                "private_key": _pem(rsa_key).decode(),
                "token_uri": "https://oauth2.example/token",
            }
        )
    )
    account = load_service_account(str(path))
    assert account.project_id == "p1"
    token = fcm_assertion(account, 1_700_000_000.9)
    claims = jwt.decode(
        token,
        rsa_key.public_key(),
        algorithms=["RS256"],
        audience="https://oauth2.example/token",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims == {
        "iss": "svc@p1.iam.gserviceaccount.com",
        "scope": FCM_SCOPE,
        "aud": "https://oauth2.example/token",
        "iat": 1_700_000_000,
        "exp": 1_700_003_600,
    }
    assert jwt.get_unverified_header(token)["kid"] == "kid-1"


def test_a_broken_service_account_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="HABITJOBS_PUSH_FCM_CREDENTIALS_FILE"):
        load_service_account(str(tmp_path / "missing.json"))
    incomplete = tmp_path / "incomplete.json"
    incomplete.write_text('{"client_email": "x"}')
    with pytest.raises(CredentialsError, match="private_key"):
        load_service_account(str(incomplete))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def apns_key_file(tmp_path: Path) -> str:
    path = tmp_path / "AuthKey_K1.p8"
    path.write_bytes(_pem(ec.generate_private_key(ec.SECP256R1())))
    return str(path)


def test_the_provider_token_is_es256_with_key_id_and_team(apns_key_file: str) -> None:
    key = load_apns_key(apns_key_file, "K1", "TEAM1")
    clock = Clock()
    token = ProviderToken(key, clock=clock).current()
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": "K1", "typ": "JWT"}
    claims = jwt.decode(
        token, key.private_key.public_key(), algorithms=["ES256"], options={"verify_iat": False}
    )
    assert claims == {"iss": "TEAM1", "iat": int(clock.now)}


def test_the_provider_token_is_reused_then_renewed_after_50_minutes(apns_key_file: str) -> None:
    clock = Clock()
    tokens = ProviderToken(load_apns_key(apns_key_file, "K1", "TEAM1"), clock=clock)
    first = tokens.current()
    clock.now += APNS_TOKEN_RENEW_S - 1
    assert tokens.current() == first
    clock.now += 1
    assert tokens.current() != first


def test_an_expired_token_is_renewed_only_when_apns_allows_it(apns_key_file: str) -> None:
    clock = Clock()
    tokens = ProviderToken(load_apns_key(apns_key_file, "K1", "TEAM1"), clock=clock)
    first = tokens.current()
    clock.now += 60
    assert tokens.renew_after_expiry(first) == pytest.approx(APNS_TOKEN_MIN_AGE_S - 60)
    assert tokens.current() == first
    clock.now += APNS_TOKEN_MIN_AGE_S
    assert tokens.renew_after_expiry(first) == 0
    second = tokens.current()
    assert second != first
    # Another sender already renewed it: nothing to do, use the new one.
    assert tokens.renew_after_expiry(first) == 0
    assert tokens.current() == second


def test_apns_key_settings_are_required(apns_key_file: str, tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="KEY_ID"):
        load_apns_key(apns_key_file, "", "TEAM1")
    with pytest.raises(CredentialsError, match="HABITJOBS_PUSH_APNS_KEY_FILE"):
        load_apns_key(str(tmp_path / "nope.p8"), "K1", "TEAM1")
