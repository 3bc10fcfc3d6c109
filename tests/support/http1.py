"""One HTTP/1.1 connection, used for request after request — what a phone's HTTP client does with
keep-alive — so a test can tell whether the server kept the connection usable after an error answer."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import h11


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class KeepAliveConnection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._conn = h11.Connection(h11.CLIENT)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.requests = 0

    async def __aenter__(self) -> KeepAliveConnection:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._writer is not None:
            self._writer.close()

    async def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, body: Any = None
    ) -> Answer:
        """Send one request on this connection and read its whole answer. Raises if the server closed the
        connection (a reset, or an answer that says ``Connection: close``) instead of keeping it."""
        assert self._reader is not None
        assert self._writer is not None
        if self.requests:
            self._conn.start_next_cycle()  # raises if the previous exchange left the connection unusable
        self.requests += 1
        data = b"" if body is None else json.dumps(body).encode()
        all_headers = [("host", f"{self.host}:{self.port}"), ("content-length", str(len(data)))]
        if body is not None:
            all_headers.append(("content-type", "application/json"))
        all_headers += list((headers or {}).items())
        out = self._conn.send(h11.Request(method=method, target=path, headers=all_headers))
        if data:
            out += self._conn.send(h11.Data(data=data))
        out += self._conn.send(h11.EndOfMessage())
        self._writer.write(out)
        await self._writer.drain()
        status, answer_headers, chunks = 0, {}, []
        while True:
            event = self._conn.next_event()
            if event is h11.NEED_DATA:
                received = await self._reader.read(65536)
                if not received:
                    raise ConnectionResetError("the server closed the connection")
                self._conn.receive_data(received)
                continue
            if isinstance(event, h11.Response):
                status = event.status_code
                answer_headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionResetError("the server closed the connection")
        if self._conn.our_state is h11.MUST_CLOSE or self._conn.their_state is h11.MUST_CLOSE:
            raise ConnectionResetError(f"the server answered {status} and closes the connection")
        return Answer(status, answer_headers, b"".join(chunks))
