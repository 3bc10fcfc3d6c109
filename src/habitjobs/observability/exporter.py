"""A worker's ``/metrics``: its own small HTTP server (a thread, off the event loop) on
``HABITJOBS_WORKER_METRICS_PORT``. Several workers on one host each take the next free port."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import start_http_server

from habitjobs.observability.metrics import REGISTRY

log = logging.getLogger(__name__)

PORTS_TRIED = 16


class MetricsServer:
    def __init__(self, server: Any, thread: Any, host: str, port: int) -> None:
        self._server = server
        self._thread = thread
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(host: str, port: int) -> MetricsServer | None:
    """Serve the registry on ``port`` or the first free one after it; None (logged) when all are taken."""
    for candidate in range(port, port + PORTS_TRIED):
        try:
            server, thread = start_http_server(candidate, addr=host, registry=REGISTRY)
        except OSError:
            continue
        found = MetricsServer(server, thread, host, int(server.server_address[1]))
        log.info("metrics on %s", found.url)
        return found
    log.warning(
        "no free port for /metrics in %d..%d: this worker serves no metrics", port, port + PORTS_TRIED - 1
    )
    return None
