"""A TCP proxy that a test can cut, black-hole and restore: PostgreSQL (or Redis) "unreachable for a
while" without touching the shared server. Runs its own event loop in a thread.

- ``cut()``: the target looks down — listening stops and open connections are reset.
- ``blackhole()``: the network drops packets — connections stay open and new ones are accepted, but
  nothing is forwarded either way and nobody is told (no reset, no close). ``restore()`` lets the held
  bytes through again, as TCP retransmissions would once the network heals.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any

from tests.support.net import free_port


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing: asyncio.Event | None = None

    def start(self) -> None:
        self._thread.start()
        self.restore()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def restore(self) -> None:
        """Accept connections and forward bytes again."""
        self._call(self._listen())

    def cut(self) -> None:
        """Stop listening and reset every open connection: the target looks down."""
        self._call(self._cut())

    def blackhole(self) -> None:
        """Stop forwarding without closing anything: the target stops answering."""
        self._call(self._blackhole())

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _listen(self) -> None:
        if self._flowing is None:
            self._flowing = asyncio.Event()
        self._flowing.set()
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )

    async def _blackhole(self) -> None:
        assert self._flowing is not None
        self._flowing.clear()

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            transport = writer.transport
            with contextlib.suppress(Exception):
                transport.abort()
        self._writers.clear()
        if self._flowing is not None:
            self._flowing.set()  # held connections were just reset; let their pipes end

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        self._writers.add(writer)
        await self._flowing.wait()  # black-holed: the connection is accepted, the target never hears of it
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        flowing = self._flowing

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                with contextlib.suppress(ConnectionError, OSError):  # either side went away
                    while data := await src.read(65536):
                        await flowing.wait()  # held while black-holed, delivered when restored
                        dst.write(data)
                        await dst.drain()
            finally:
                with contextlib.suppress(Exception):
                    dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update({writer, up_writer})
