"""Starting the fakes: in their own thread and event loop (tests, ``habitjobs dev``), or as a process
(``python -m habitjobs.push.fakes``, for benchmarks).

Their own loop means a client bug can never stall the servers it talks to, and the test's loop never
serves them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from habitjobs.push.fakes.apns_server import FakeApns
from habitjobs.push.fakes.certs import (
    APNS_KEY_ID,
    APNS_TEAM_ID,
    APNS_TOPIC,
    CLIENT_EMAIL,
    PROJECT_ID,
    FakeCredentials,
    make_credentials,
)
from habitjobs.push.fakes.fcm_app import FakeFcm
from habitjobs.push.fakes.outcomes import Behaviour
from habitjobs.push.fakes.pushlog import PushLog

log = logging.getLogger(__name__)
START_TIMEOUT_S = 20.0


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


@dataclass
class Ports:
    """0 = any free port."""

    fcm: int = 0
    page: int = 0
    apns: int = 0
    apns_sandbox: int = 0


class RunningFakes:
    """Fake FCM (+ OAuth) and APNs (production + sandbox) servers, running until :meth:`close`."""

    def __init__(
        self,
        directory: Path,
        *,
        host: str = "127.0.0.1",
        ports: Ports | None = None,
        behaviour: Behaviour | None = None,
        log_file: Path | None = None,
    ) -> None:
        ports = ports or Ports()
        self.host = host
        self.behaviour = behaviour or Behaviour()
        self.log = PushLog(log_file)
        self._sockets = {
            "fcm": _listen(host, ports.fcm),
            "page": _listen(host, ports.page),
            "apns": _listen(host, ports.apns),
            "apns_sandbox": _listen(host, ports.apns_sandbox),
        }
        self.ports = {name: sock.getsockname()[1] for name, sock in self._sockets.items()}
        self.fcm_url = f"https://{host}:{self.ports['fcm']}"
        self.pushes_url = f"http://{host}:{self.ports['page']}/"
        self.credentials: FakeCredentials = make_credentials(
            directory, token_uri=f"{self.fcm_url}/token", hosts=(host, "localhost")
        )
        self.fcm = FakeFcm(
            self.log,
            self.behaviour,
            project_id=PROJECT_ID,
            client_email=CLIENT_EMAIL,
            public_key_pem=self.credentials.service_account_public_pem,
            token_uri=f"{self.fcm_url}/token",
        )
        self.apns = FakeApns(
            self.log,
            self.behaviour,
            public_key_pem=self.credentials.apns_public_pem,
            key_id=APNS_KEY_ID,
            team_id=APNS_TEAM_ID,
            topic=APNS_TOPIC,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fake-push-providers", daemon=True)

    # --- what clients need ---------------------------------------------------------------------

    def settings_overrides(self) -> dict[str, Any]:
        """``Settings`` fields that point the senders at these fakes."""
        return {
            "push_fcm_credentials_file": str(self.credentials.service_account_file),
            "push_fcm_endpoint": self.fcm_url,
            "push_apns_key_file": str(self.credentials.apns_key_file),
            "push_apns_key_id": APNS_KEY_ID,
            "push_apns_team_id": APNS_TEAM_ID,
            "push_apns_topic": APNS_TOPIC,
            "push_apns_host": f"{self.host}:{self.ports['apns']}",
            "push_apns_sandbox_host": f"{self.host}:{self.ports['apns_sandbox']}",
            "push_ca_file": str(self.credentials.ca_file),
        }

    @property
    def env(self) -> dict[str, str]:
        """The same as ``HABITJOBS_*`` environment variables, for worker processes."""
        return {f"HABITJOBS_{key.upper()}": str(value) for key, value in self.settings_overrides().items()}

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> RunningFakes:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise TimeoutError("the fake push providers did not start")
        if self._error is not None:
            raise RuntimeError("the fake push providers failed to start") from self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(_quiet_disconnects)
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        context = self.credentials.server_context()
        await self.apns.listen(self._sockets["apns"], "production", context)
        await self.apns.listen(self._sockets["apns_sandbox"], "sandbox", context)
        config = Config()
        config.bind = [f"fd://{self._sockets['fcm'].detach()}"]
        config.insecure_bind = [f"fd://{self._sockets['page'].detach()}"]
        config.certfile = str(self.credentials.cert_file)
        config.keyfile = str(self.credentials.key_file)
        config.alpn_protocols = ["h2", "http/1.1"]
        config.h2_max_concurrent_streams = 1000
        config.keep_alive_timeout = 60
        config.keep_alive_max_requests = 2**31  # Google closes connections far less often than hypercorn
        config.graceful_timeout = 1
        config.accesslog = None
        config.errorlog = None
        server = asyncio.create_task(serve(self.fcm, config, shutdown_trigger=self._stop.wait))  # type: ignore[arg-type]
        await asyncio.sleep(0)
        self._ready.set()
        await self._stop.wait()
        await self.apns.close()
        with suppress(asyncio.CancelledError):
            await asyncio.wait_for(server, 5)

    def close(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        for sock in self._sockets.values():
            with suppress(OSError):
                sock.close()


_DISCONNECT_NOISE = ("Unhandled exception in client_connected_cb", "Fatal error on SSL protocol")


def _quiet_disconnects(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Clients that vanish mid-connection (timeouts, aborted tests, killed workers) are routine for a fake
    server: hypercorn and asyncio report them as unhandled errors; keep them out of the output."""
    if str(context.get("message", "")).startswith(_DISCONNECT_NOISE):
        log.debug("fake provider: a client went away: %r", context.get("exception"))
        return
    loop.default_exception_handler(context)


def start_fake_providers(
    directory: Path,
    *,
    host: str = "127.0.0.1",
    ports: Ports | None = None,
    behaviour: Behaviour | None = None,
    log_file: Path | None = None,
) -> RunningFakes:
    """Start fake FCM (+ OAuth) and APNs servers in a background thread; returns once they listen.

    ``directory`` receives the throwaway CA, the service-account JSON and the APNs key. Hand
    :attr:`RunningFakes.env` (``HABITJOBS_PUSH_*`` variables) to the API and worker processes;
    :attr:`RunningFakes.pushes_url` shows what arrived (plain HTTP). Call :meth:`RunningFakes.close` to stop.
    """
    return RunningFakes(directory, host=host, ports=ports, behaviour=behaviour, log_file=log_file).start()


@contextmanager
def running_fakes(directory: Path, **kwargs: Any) -> Iterator[RunningFakes]:
    fakes = start_fake_providers(directory, **kwargs)
    try:
        yield fakes
    finally:
        fakes.close()
