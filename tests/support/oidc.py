"""A local OpenID Connect provider for tests: a real HTTP server on a free loopback port that publishes
real RSA and EC public keys (its JWKS) and its discovery document, and signs tokens with the private keys.

Like a real provider it rotates keys (publish a new one, sign with it, withdraw the old one), and like
the worst of them it can fail: answer an error status for a while, or hang until the client gives up.
Every request is counted, so a test can tell how often the API went to the network.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from habitjobs.config import OidcProvider


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str  # RS256 or ES256
    private: Any

    def public_jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        convert = RSAAlgorithm if self.algorithm.startswith("RS") else ECAlgorithm
        jwk: dict[str, Any] = json.loads(convert.to_jwk(public))
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(
    header: dict[str, Any], payload: dict[str, Any] | str, signature: bytes = b""
) -> tuple[str, str]:
    """A token assembled by hand (for what no JWT library will sign): its signing input and the token."""
    body = payload if isinstance(payload, str) else json.dumps(payload)
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(body.encode())
    return signing_input, signing_input + "." + _b64(signature)


class LocalProvider:
    def __init__(self, *, audience: str = "https://api.habitjobs.test", discovery: bool = True) -> None:
        self.audience = audience
        self.keys: dict[str, SigningKey] = {}
        self.published: list[str] = []
        self.requests: Counter[str] = Counter()
        self.fail_status: int | None = None
        self.hang = threading.Event()  # set: every answer waits until it is cleared
        self._lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with provider._lock:
                    provider.requests[self.path] += 1
                while provider.hang.is_set():
                    time.sleep(0.01)
                status, document = provider._answer(self.path)
                payload = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.issuer = f"http://127.0.0.1:{self._server.server_address[1]}/realms/test"
        self.jwks_url = self.issuer + "/protocol/openid-connect/certs"
        self.discovery = discovery

    def config(self, **overrides: Any) -> OidcProvider:
        """How the API is configured for this provider (discovery unless ``discovery=False``)."""
        values: dict[str, Any] = {
            "issuer": self.issuer,
            "audience": [self.audience],
            "jwks_url": "" if self.discovery else self.jwks_url,
        }
        values.update(overrides)
        return OidcProvider(**values)

    @property
    def key_fetches(self) -> int:
        return self.requests["/realms/test/protocol/openid-connect/certs"]

    def _answer(self, path: str) -> tuple[int, dict[str, Any]]:
        if self.fail_status is not None:
            return self.fail_status, {"error": "unavailable"}
        if path == "/realms/test/.well-known/openid-configuration":
            return 200, {"issuer": self.issuer, "jwks_uri": self.jwks_url}
        if path == "/realms/test/protocol/openid-connect/certs":
            with self._lock:
                return 200, {"keys": [self.keys[kid].public_jwk() for kid in self.published]}
        return 404, {"error": "not found"}

    def new_key(self, algorithm: str = "RS256", *, publish: bool = True) -> SigningKey:
        private: Any = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if algorithm == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        key = SigningKey(f"{algorithm.lower()}-{uuid.uuid4().hex[:8]}", algorithm, private)
        with self._lock:
            self.keys[key.kid] = key
            if publish:
                self.published.append(key.kid)
        return key

    def publish(self, key: SigningKey) -> None:
        with self._lock:
            if key.kid not in self.published:
                self.published.append(key.kid)

    def withdraw(self, key: SigningKey) -> None:
        with self._lock:
            self.published.remove(key.kid)

    def claims(self, subject: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.audience,
            "iat": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self, key: SigningKey, subject: str, *, headers: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        return jwt.encode(
            self.claims(subject, **claims),
            key.private,
            algorithm=key.algorithm,
            headers={"kid": key.kid, **(headers or {})},
        )

    def hs256_with_public_key(self, key: SigningKey, subject: str) -> str:
        """The algorithm-confusion attack: HS256 "signed" with the provider's public key as the secret."""
        signing_input, _ = raw_token({"alg": "HS256", "typ": "JWT", "kid": key.kid}, self.claims(subject))
        signature = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
        return signing_input + "." + _b64(signature)

    def unsigned(self, key: SigningKey, subject: str) -> str:
        """``alg: none``: no signature at all."""
        return raw_token({"alg": "none", "typ": "JWT", "kid": key.kid}, self.claims(subject))[1]

    def signed_raw(self, key: SigningKey, payload: str) -> str:
        """A validly signed token whose payload is the given JSON text (e.g. numbers no encoder writes)."""
        signing_input, _ = raw_token({"alg": key.algorithm, "typ": "JWT", "kid": key.kid}, payload)
        algorithm = jwt.get_algorithm_by_name(key.algorithm)
        return signing_input + "." + _b64(algorithm.sign(signing_input.encode(), key.private))

    def close(self) -> None:
        self.hang.clear()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
