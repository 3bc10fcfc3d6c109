"""Who and what a log line is about, carried through contextvars: the request id (from the request into
the jobs it starts, through the job's data), the user id (never an e-mail), the job id and name."""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar
from typing import Any

from habitjobs.observability import tracing

request_id: ContextVar[str | None] = ContextVar("habitjobs_request_id", default=None)
user_id: ContextVar[str | None] = ContextVar("habitjobs_user_id", default=None)
job_id: ContextVar[str | None] = ContextVar("habitjobs_job_id", default=None)
job_name: ContextVar[str | None] = ContextVar("habitjobs_job_name", default=None)

# The key under which a job's data carries the request id of the request that started it. Not part of
# any payload model: the worker takes it off before validating the payload.
JOB_DATA_KEY = "_request_id"
HEADER = "x-request-id"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def new_request_id() -> str:
    return secrets.token_hex(8)


def accept_request_id(value: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is a short plain token, else a new one."""
    if value and _VALID.match(value):
        return value
    return new_request_id()


def with_request_id(data: dict[str, Any], given: object = None, trace: object = None) -> dict[str, Any]:
    """``data`` with the request id to carry: the one ``given`` (from stored job data), else the current;
    and, when tracing, the trace context (``trace``, or the current one)."""
    rid = given if isinstance(given, str) else request_id.get()
    if rid:
        data[JOB_DATA_KEY] = rid
    if tracing.ENABLED:
        data[tracing.JOB_DATA_KEY] = trace if isinstance(trace, dict) else tracing.carrier()
    return data


def take_request_id(data: object) -> tuple[object, str | None]:
    """Split a job's stored data into (payload, carried request id); the trace context is dropped too
    (:func:`carried_trace` reads it)."""
    if isinstance(data, dict) and (JOB_DATA_KEY in data or tracing.JOB_DATA_KEY in data):
        rest = dict(data)
        rid = rest.pop(JOB_DATA_KEY, None)
        rest.pop(tracing.JOB_DATA_KEY, None)
        return rest, rid if isinstance(rid, str) else None
    return data, None


def carried_trace(data: object) -> dict[str, str] | None:
    found = data.get(tracing.JOB_DATA_KEY) if isinstance(data, dict) else None
    return found if isinstance(found, dict) else None
