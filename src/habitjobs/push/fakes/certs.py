"""Throwaway credentials for the fakes: a CA and a server certificate (trustme), a service-account JSON
whose ``token_uri`` points at the fake OAuth endpoint, and an APNs ``.p8`` key."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PROJECT_ID = "habitjobs-fake"
CLIENT_EMAIL = f"push@{PROJECT_ID}.iam.gserviceaccount.com"
APNS_KEY_ID = "FAKEKEY001"
APNS_TEAM_ID = "FAKETEAM01"
APNS_TOPIC = "app.habitjobs.fake"


@dataclass(frozen=True)
class FakeCredentials:
    directory: Path
    ca_file: Path
    cert_file: Path
    key_file: Path
    service_account_file: Path
    apns_key_file: Path
    service_account_public_pem: bytes
    apns_public_pem: bytes

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(self.cert_file), str(self.key_file))
        context.set_alpn_protocols(["h2"])
        return context


def _public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _private_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_credentials(directory: Path, *, token_uri: str, hosts: tuple[str, ...]) -> FakeCredentials:
    """Write fresh credentials into ``directory`` (blocking; a fraction of a second for the RSA key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="habitjobs fake push providers")
    cert = ca.issue_cert(*hosts)
    ca_file = directory / "fake-ca.pem"
    cert_file = directory / "fake-server.pem"
    key_file = directory / "fake-server.key"
    ca.cert_pem.write_to_path(str(ca_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_file))

    account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    service_account = {
        "type": "service_account",
        "project_id": PROJECT_ID,
        "private_key_id": "fake-key-1",
        "private_key": _private_pem(account_key).decode(),
        "client_email": CLIENT_EMAIL,
        "token_uri": token_uri,
    }
    service_account_file = directory / "fake-service-account.json"
    service_account_file.write_text(json.dumps(service_account, indent=2))

    apns_key = ec.generate_private_key(ec.SECP256R1())
    apns_key_file = directory / f"AuthKey_{APNS_KEY_ID}.p8"
    apns_key_file.write_bytes(_private_pem(apns_key))
    return FakeCredentials(
        directory=directory,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        service_account_file=service_account_file,
        apns_key_file=apns_key_file,
        service_account_public_pem=_public_pem(account_key),
        apns_public_pem=_public_pem(apns_key),
    )
