"""Log lines: JSON with the context variables in prod, text in dev, secrets masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from habitjobs.logs import ContextFilter, JsonFormatter, TextFormatter, mask
from habitjobs.observability import context


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("habitjobs.test.logs")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield logger, stream, handler
    logger.removeHandler(handler)


def test_json_lines_carry_request_user_and_job(
    captured: tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, stream, handler = captured
    handler.setFormatter(JsonFormatter())
    tokens = [
        context.request_id.set("req-1"),
        context.user_id.set("5f0c1a8e-0000-4000-8000-000000000001"),
        context.job_id.set("sync-1"),
        context.job_name.set("sync.apply_batch"),
    ]
    try:
        logger.info("merged %d", 3)
    finally:
        for var, token in zip(
            (context.request_id, context.user_id, context.job_id, context.job_name), tokens, strict=True
        ):
            var.reset(token)
    logger.warning("outside")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["msg"] == "merged 3"
    assert first["level"] == "INFO"
    assert first["logger"] == "habitjobs.test.logs"
    assert first["request_id"] == "req-1"
    assert first["user_id"] == "5f0c1a8e-0000-4000-8000-000000000001"
    assert (first["job_id"], first["job_name"]) == ("sync-1", "sync.apply_batch")
    assert first["ts"].endswith("Z")
    assert "request_id" not in second
    assert "job_id" not in second


def test_text_lines_append_the_context(
    captured: tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, stream, handler = captured
    handler.setFormatter(TextFormatter())
    token = context.request_id.set("req-2")
    try:
        logger.info("hello")
    finally:
        context.request_id.reset(token)
    assert stream.getvalue().rstrip().endswith("hello [request_id=req-2]")


@pytest.mark.parametrize(
    "secret",
    [
        "a" * 64,  # APNs device token
        "dGhpcyBpcyBub3QgYSB0b2tlbg:" + "APA91b" + "x" * 140,  # FCM registration token
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlc2lnbmF0dXJl",  # JWT
    ],
)
def test_device_tokens_and_credentials_are_masked(secret: str) -> None:
    line = mask(f"sending to {secret} now")
    assert secret not in line
    assert line.startswith("sending to ")
    assert line.endswith(" now")
    assert "***" in line


def test_bearer_and_named_secrets_are_masked() -> None:
    line = mask("Authorization: Bearer abc.def-ghi password=hunter2 secret: 's3cr3t' jwt_secret=xyz")
    for secret in ("abc.def-ghi", "hunter2", "s3cr3t", "xyz"):
        assert secret not in line
    assert mask("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----") == "***private key***"
    # Ordinary ids stay readable.
    assert mask("job sync-5e12a493-6ec6-4688-8c42-997b325bacdd done") == (
        "job sync-5e12a493-6ec6-4688-8c42-997b325bacdd done"
    )


def test_a_request_id_is_accepted_only_when_plain() -> None:
    assert context.accept_request_id("abc-123_x.y:z") == "abc-123_x.y:z"
    for bad in ("", "x" * 65, "a b", "a\nb", None):
        generated = context.accept_request_id(bad)
        assert generated != bad
        assert len(generated) == 16
    data, rid = context.take_request_id({"batch_id": "b", context.JOB_DATA_KEY: "r-1"})
    assert (data, rid) == ({"batch_id": "b"}, "r-1")
