"""The only place Redis clients are created.

Two kinds of client, with different time limits:

- **Command clients** (``create_redis``: the producer's, the API's, the CLI's, the reconciliation's): they
  never block on the server, so every command carries a time limit (``socket_timeout``). A Redis that
  stops answering (paused, overloaded, a network that drops packets) fails the call after that limit
  instead of hanging the request; the connection is dropped and the next call opens a new one. A broken
  connection is retried once, a timeout never (retrying would multiply the wait).
- **Worker connections** (``worker_client``, the ``connection`` option of our workers; ``bullmq_connection``
  gives the same options as a dict, for a bare bullmq ``Worker``): they
  run bullmq's blocking read (BZPOPMIN, up to 10 s by design) and must not carry a socket timeout
  (redis-py's default of 5 s breaks it: an idle worker then picks new jobs up seconds late;
  docs/engine.md, E1). Instead they use TCP keepalive with a user timeout, so the kernel notices a peer
  that is gone (a host or network that dropped out without closing) within about ``DEAD_PEER_S`` —
  without ever interrupting a read from a live server, however long it blocks. A paused but live server
  keeps its connections; they carry on when it resumes.

One setting is not negotiable for either: ``decode_responses=True`` — bullmq parses job hashes as
``str``; with bytes it silently builds jobs with empty data and no name that then stay active forever
(docs/engine.md, E7).
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, ExponentialWithJitterBackoff
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# A connection that cannot be made within this time is reported, instead of hanging a request.
CONNECT_TIMEOUT_S = 5.0
# The default limit on one command of a command client (the API uses its own, shorter one).
DEFAULT_COMMAND_TIMEOUT_S = 10.0
# TCP keepalive on every Redis connection: first probe after 10 s of silence, then every 5 s, and the
# connection is dropped when probes (or sent data) stay unanswered for 30 s.
_KEEPALIVE_IDLE_S, _KEEPALIVE_INTERVAL_S, _KEEPALIVE_COUNT = 10, 5, 3
_USER_TIMEOUT_MS = 30_000
DEAD_PEER_S = 30


class UnsafeRedisOptions(ValueError):
    """Somebody asked for a client bullmq cannot work with."""


def _keepalive_options() -> dict[int, int]:
    options: dict[int, int] = {}
    for name, value in (
        ("TCP_KEEPIDLE", _KEEPALIVE_IDLE_S),
        ("TCP_KEEPINTVL", _KEEPALIVE_INTERVAL_S),
        ("TCP_KEEPCNT", _KEEPALIVE_COUNT),
        ("TCP_USER_TIMEOUT", _USER_TIMEOUT_MS),  # Linux only; elsewhere keepalive alone
    ):
        option = getattr(socket, name, None)
        if option is not None:
            options[option] = value
    return options


def redis_kwargs(url: str) -> dict[str, Any]:
    """Connection keyword arguments for ``url`` (redis://, rediss://, unix://), safe for bullmq's
    blocking reads (no socket timeout, TCP keepalive).

    The URL is read by redis-py's own ``parse_url``, so everything it understands counts: credentials,
    the database (``/2`` or ``?db=2``, also on ``unix://``), and query options such as ``rediss://…
    ?ssl_cert_reqs=none`` or ``ssl_ca_certs=``. They become keyword arguments of ``Redis(...)``."""
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise UnsafeRedisOptions(
            f"unsupported Redis URL scheme {scheme!r} (use redis://, rediss://, unix://)"
        )
    kwargs: dict[str, Any] = dict(parse_url(url))
    connection_class = kwargs.pop("connection_class", None)
    if connection_class is UnixDomainSocketConnection:
        kwargs["unix_socket_path"] = kwargs.pop("path")
    else:
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("port", 6379)
        if connection_class is SSLConnection:
            kwargs["ssl"] = True
        kwargs["socket_keepalive"] = True
        kwargs["socket_keepalive_options"] = _keepalive_options()
    kwargs.setdefault("db", 0)
    kwargs.update(_REQUIRED)
    kwargs["socket_timeout"] = None
    kwargs["socket_connect_timeout"] = CONNECT_TIMEOUT_S
    kwargs["health_check_interval"] = 30
    return kwargs


_REQUIRED: dict[str, Any] = {"decode_responses": True}


def worker_client(url: str) -> aioredis.Redis:
    """The ``connection`` option for our bullmq workers: a *pooled* client without socket timeout (see
    the module). Given a dict instead, bullmq builds a single-connection client, and every command of the
    worker's concurrent jobs then waits for the one before it on one socket (docs/engine.md, E10); with a
    pool each in-flight command has a connection of its own, and the blocking read one more.

    It retries broken connections as bullmq's own client does (up to 20 times, backing off to 20 s), so a
    Redis restart is ridden out the same way. One per worker: the worker closes it when it closes.
    """
    kwargs = redis_kwargs(url)
    kwargs["retry"] = Retry(ExponentialBackoff(cap=20, base=1), 20)
    kwargs["retry_on_error"] = [BusyLoadingError, RedisConnectionError, RedisTimeoutError]
    return aioredis.Redis(**kwargs)


def bullmq_connection(url: str) -> dict[str, Any]:
    """The ``connection`` option for bullmq's Worker: a dict, so each gets its own clients, with no socket
    timeout (see the module).

    bullmq itself passes ``decode_responses=True`` next to these, so it must not appear twice.
    """
    kwargs = redis_kwargs(url)
    del kwargs["decode_responses"]
    return kwargs


def create_redis(
    url: str, *, command_timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S, **overrides: Any
) -> aioredis.Redis:
    """A pooled command client (enqueueing, inspection, health checks, rate limiting): every command fails
    after ``command_timeout_s`` rather than hang. Never use it for blocking reads."""
    for key, required in _REQUIRED.items():
        if key in overrides and overrides[key] != required:
            raise UnsafeRedisOptions(
                f"{key}={overrides[key]!r} is not allowed: bullmq needs {key}={required!r}"
            )
    if "socket_timeout" in overrides:
        raise UnsafeRedisOptions(
            "socket_timeout is set through command_timeout_s (see habitjobs.queue.connection)"
        )
    kwargs = redis_kwargs(url)
    kwargs["socket_timeout"] = command_timeout_s
    kwargs["socket_connect_timeout"] = min(CONNECT_TIMEOUT_S, command_timeout_s)
    # A connection found broken is retried once on a new one; a timeout is not retried.
    kwargs["retry"] = Retry(
        ExponentialWithJitterBackoff(base=0.05, cap=0.5), 1, supported_errors=(RedisConnectionError,)
    )
    kwargs.update(overrides)
    return aioredis.Redis(**kwargs)


def assert_safe(client: aioredis.Redis) -> None:
    """Refuse a client that was built elsewhere without the required options."""
    conn_kwargs = client.connection_pool.connection_kwargs
    for key, required in _REQUIRED.items():
        if conn_kwargs.get(key, False) != required:
            raise UnsafeRedisOptions(
                f"this Redis client has {key}={conn_kwargs.get(key)!r}; bullmq needs {required!r}"
            )
