"""A worker's /metrics server: several workers on one host each get a port of their own."""

from __future__ import annotations

import socket
import urllib.request

from habitjobs.observability import metrics
from habitjobs.observability.exporter import PORTS_TRIED, serve_metrics
from tests.support.net import free_port


def test_a_taken_port_moves_the_server_to_the_next_free_one() -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        first = serve_metrics("127.0.0.1", port)
        second = serve_metrics("127.0.0.1", port)
        try:
            assert first is not None
            assert second is not None
            assert port < first.port < port + PORTS_TRIED
            assert first.port < second.port < port + PORTS_TRIED
            metrics.LOOP_BLOCKED.inc(0)
            for server in (first, second):
                with urllib.request.urlopen(server.url, timeout=5) as answer:  # noqa: S310 - loopback
                    body = answer.read().decode()
                assert "habitjobs_loop_blocked_total" in body
                assert "habitjobs_jobs_completed_total" in body
        finally:
            for started in (first, second):
                if started is not None:
                    started.close()
