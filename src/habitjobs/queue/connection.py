"""The only place Redis clients are created.

Two settings are not negotiable (docs/engine.md, E1 and E7):
- ``decode_responses=True``: bullmq parses job hashes as ``str``; with bytes it silently builds jobs with
  empty data and no name that then stay active forever.
- ``socket_timeout=None``: redis-py 8 defaults to 5 s, which breaks bullmq's blocking reads (BZPOPMIN):
  an idle worker then picks new jobs up seconds late.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis

# A connection that cannot be made within this time is reported, instead of hanging a request.
CONNECT_TIMEOUT_S = 5.0


class UnsafeRedisOptions(ValueError):
    """Somebody asked for a client bullmq cannot work with."""


def redis_kwargs(url: str) -> dict[str, Any]:
    """Connection keyword arguments for ``url`` (redis://, rediss://, unix://), safe for bullmq."""
    parts = urlsplit(url)
    kwargs: dict[str, Any] = {}
    if parts.scheme in ("redis", "rediss"):
        kwargs["host"] = parts.hostname or "127.0.0.1"
        kwargs["port"] = parts.port or 6379
        db = parts.path.lstrip("/")
        kwargs["db"] = int(db) if db else 0
        if parts.scheme == "rediss":
            kwargs["ssl"] = True
    elif parts.scheme == "unix":
        kwargs["unix_socket_path"] = parts.path
    else:
        raise UnsafeRedisOptions(
            f"unsupported Redis URL scheme {parts.scheme!r} (use redis://, rediss://, unix://)"
        )
    if parts.username:
        kwargs["username"] = unquote(parts.username)
    if parts.password:
        kwargs["password"] = unquote(parts.password)
    kwargs.update(_REQUIRED)
    kwargs["socket_connect_timeout"] = CONNECT_TIMEOUT_S
    kwargs["health_check_interval"] = 30
    return kwargs


_REQUIRED: dict[str, Any] = {"decode_responses": True, "socket_timeout": None}


def bullmq_connection(url: str) -> dict[str, Any]:
    """The ``connection`` option for bullmq's Queue/Worker: a dict, so each gets its own clients.

    bullmq itself passes ``decode_responses=True`` next to these, so it must not appear twice.
    """
    kwargs = redis_kwargs(url)
    del kwargs["decode_responses"]
    return kwargs


def create_redis(url: str, **overrides: Any) -> aioredis.Redis:
    """A pooled client for our own commands (health checks, inspection, rate limiting)."""
    for key, required in _REQUIRED.items():
        if key in overrides and overrides[key] != required:
            raise UnsafeRedisOptions(
                f"{key}={overrides[key]!r} is not allowed: bullmq needs {key}={required!r}"
            )
    kwargs = redis_kwargs(url)
    kwargs.update(overrides)
    return aioredis.Redis(**kwargs)


def assert_safe(client: aioredis.Redis) -> None:
    """Refuse a client that was built elsewhere without the required options."""
    conn_kwargs = client.connection_pool.connection_kwargs
    for key, required in _REQUIRED.items():
        if conn_kwargs.get(key, None if key == "socket_timeout" else False) != required:
            raise UnsafeRedisOptions(
                f"this Redis client has {key}={conn_kwargs.get(key)!r}; bullmq needs {required!r}"
            )
