"""Redis URLs are read by redis-py's parse_url: credentials, database and query options all count."""

from __future__ import annotations

import pytest

from habitjobs.queue.connection import (
    UnsafeRedisOptions,
    bullmq_connection,
    create_redis,
    redis_kwargs,
)


def test_host_port_database_and_quoted_credentials() -> None:
    kwargs = redis_kwargs("redis://ops:p%40ss@cache.internal:6380/3")
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.internal", 6380, 3)
    assert (kwargs["username"], kwargs["password"]) == ("ops", "p@ss")
    assert kwargs["socket_keepalive"] is True


def test_defaults_when_the_url_names_little() -> None:
    kwargs = redis_kwargs("redis://")
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("127.0.0.1", 6379, 0)


def test_rediss_keeps_its_ssl_query_options() -> None:
    kwargs = redis_kwargs("rediss://cache.internal/1?ssl_cert_reqs=none&ssl_ca_certs=/etc/ca.pem")
    assert kwargs["ssl"] is True
    assert kwargs["ssl_cert_reqs"] == "none"
    assert kwargs["ssl_ca_certs"] == "/etc/ca.pem"
    assert kwargs["db"] == 1


def test_unix_socket_with_a_database_in_the_query() -> None:
    kwargs = redis_kwargs("unix:///run/redis/redis.sock?db=2")
    assert kwargs["unix_socket_path"] == "/run/redis/redis.sock"
    assert kwargs["db"] == 2
    assert "host" not in kwargs
    assert "socket_keepalive" not in kwargs


def test_the_options_bullmq_needs_win_over_the_query() -> None:
    kwargs = redis_kwargs("redis://h/0?decode_responses=false&socket_timeout=1")
    assert kwargs["decode_responses"] is True
    assert kwargs["socket_timeout"] is None
    assert "decode_responses" not in bullmq_connection("redis://h/0")


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(UnsafeRedisOptions, match="unsupported Redis URL scheme"):
        redis_kwargs("http://cache.internal:6379/0")


async def test_a_client_made_from_a_rediss_url_keeps_the_options() -> None:
    client = create_redis("rediss://cache.internal:6390/4?ssl_cert_reqs=none", command_timeout_s=2.0)
    try:
        conn = client.connection_pool.connection_kwargs
        assert (conn["host"], conn["port"], conn["db"]) == ("cache.internal", 6390, 4)
        assert conn["ssl_cert_reqs"] == "none"
        assert conn["socket_timeout"] == 2.0
        assert client.connection_pool.connection_class.__name__ == "SSLConnection"
    finally:
        await client.aclose()
