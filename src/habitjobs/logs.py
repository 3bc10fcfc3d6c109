"""Logging set-up for every process: one line per event.

Production writes one JSON object per line (``ts``, ``level``, ``logger``, ``msg`` and, when known,
``request_id``, ``user_id``, ``job_id``, ``job_name``, ``exc``); dev and test write plain text with the same
context appended as key=value pairs. Device tokens, bearer tokens and other secrets that end up in a
message are masked."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

from habitjobs.observability import context

_CONTEXT = (
    ("request_id", context.request_id),
    ("user_id", context.user_id),
    ("job_id", context.job_id),
    ("job_name", context.job_name),
)

# What must not reach a log line: bearer credentials and JWTs, APNs device tokens (64 hex), FCM
# registration tokens (an id, a colon, a long base64url tail), PEM keys, secret=... pairs.
_SECRETS = re.compile(
    r"(?P<bearer>(?i:bearer)\s+)[A-Za-z0-9._~+/=-]+"
    r"|eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"
    r"|\b[A-Za-z0-9_-]{11,}:[A-Za-z0-9_-]{60,}"
    r"|\b[0-9a-fA-F]{64}\b"
    r"|(?P<key>(?i:secret|password|token|private_key|api_key)[\"']?\s*[=:]\s*[\"']?)[^\s\"',}]+"
)


def _mask_match(match: re.Match[str]) -> str:
    lead = match["bearer"] or match["key"]
    if lead:
        return f"{lead}***"
    text = match[0]
    return f"{text[:6]}***" if not text.startswith("-----") else "***private key***"


def mask(text: str) -> str:
    return _SECRETS.sub(_mask_match, text)


class ContextFilter(logging.Filter):
    """Copies the context variables onto each record (``record.request_id`` ...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _CONTEXT:
            if not hasattr(record, name):
                setattr(record, name, var.get())
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": mask(record.getMessage()),
        }
        for name, _ in _CONTEXT:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc"] = mask(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = mask(super().format(record))
        extra = " ".join(
            f"{name}={value}" for name, _ in _CONTEXT if (value := getattr(record, name, None)) is not None
        )
        return f"{line} [{extra}]" if extra else line


def configure_logging(level: str = "INFO", *, json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # bullmq and the HTTP clients are chatty at INFO.
    for noisy in ("httpx", "httpcore", "hpack", "h2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
