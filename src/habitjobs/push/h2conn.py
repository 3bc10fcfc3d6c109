"""One HTTP/2 connection of the push client, on the sans-IO ``h2`` library (docs/push.md).

It lives on the event loop as an ``asyncio.Protocol``; every method is synchronous. It opens a stream only
while its open streams are below min(the server's MAX_CONCURRENT_STREAMS, the pool's cap) — one stream until
the server's first SETTINGS — and says, for every request that does not get an answer, whether the server
may have processed it:
:class:`Refused` (REFUSED_STREAM, or a stream above GOAWAY's last_stream_id: never processed, resend now),
:class:`Unavailable` (no connection or no free stream before the deadline: nothing was sent),
:class:`Ambiguous` (the connection died or the deadline passed with the request out: it may have arrived).
Responses that arrive after a graceful GOAWAY (streams at or below last_stream_id) are still read.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from h2.config import H2Configuration
from h2.connection import ConnectionState, H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError
from hpack import Encoder

log = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]


class PoolHooks(Protocol):
    """What a connection tells its pool."""

    max_streams: int

    def wake(self) -> None: ...

    def connection_draining(self, conn: Connection) -> None: ...

    def connection_closed(self, conn: Connection) -> None: ...


class NotSent(Exception):
    """The server did not process the request."""


class Refused(NotSent):
    """REFUSED_STREAM or above GOAWAY's last stream: safe to resend at once."""


class Unavailable(NotSent):
    """No connection, or no free stream before the deadline: a queue retry, later."""


class Ambiguous(Exception):
    """The request went out but no answer came: the server may have processed it."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class _Stream:
    __slots__ = ("body", "future", "headers", "pending", "status", "timer")

    def __init__(self, future: asyncio.Future[Response]) -> None:
        self.future = future
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.pending = b""  # request body not yet sent (waiting for flow-control window)
        self.timer: asyncio.TimerHandle | None = None


class _H2(H2Connection):
    """h2 counts open streams by scanning every stream each time one opens (O(n) per request); the
    connection already knows the count, so it hands it in, and lets h2 scan (and purge closed streams)
    only every ``_PURGE_EVERY`` streams."""

    known_open: int | None = None

    @property
    def open_outbound_streams(self) -> int:
        if self.known_open is not None:
            return self.known_open
        return super().open_outbound_streams

    def _receive_goaway_frame(self, frame: Any) -> Any:
        # h2 moves to CLOSED on GOAWAY and would then reject the answers the server still owes for streams
        # up to last_stream_id (RFC 9113 §6.8), even those in the same read. The connection never opens
        # a stream again after a GOAWAY (it is draining), so keep it open for reading.
        result = super()._receive_goaway_frame(frame)
        self.state_machine.state = ConnectionState.CLIENT_OPEN
        return result


_PURGE_EVERY = 64
FLUSH_EVERY = 16


class PlainEncoder(Encoder):
    """HPACK without Huffman coding: pure-Python Huffman costs more CPU per request than the bytes it saves
    on a connection that mostly sends indexed headers."""

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        return super().encode(headers, huffman=False)


_CONFIG = H2Configuration(
    client_side=True,
    header_encoding=None,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
    validate_inbound_headers=False,
)


class Connection(asyncio.Protocol):
    """One TLS connection. Lives on the event loop; every method is synchronous (sans-IO + callbacks)."""

    def __init__(self, pool: PoolHooks) -> None:
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self._h2 = _H2(_CONFIG)
        self._h2.encoder = PlainEncoder()
        self._opened = 0
        self._transport: asyncio.Transport | None = None
        self._streams: dict[int, _Stream] = {}
        self._blocked: collections.OrderedDict[int, _Stream] = collections.OrderedDict()
        self._flush_scheduled = False
        self._unflushed = 0
        self._settings_seen = False
        self._goaway_last: int | None = None
        self.reserved = 0  # slots promised to waiting requests
        self.ready = False
        self.draining = False
        self.closed = False

    # --- capacity ----------------------------------------------------------------------------

    @property
    def limit(self) -> int:
        if not self.ready or self.draining or self.closed:
            return 0
        if not self._settings_seen:
            return 1
        return min(self._h2.remote_settings.max_concurrent_streams, self._pool.max_streams)

    @property
    def free(self) -> int:
        return self.limit - len(self._streams) - self.reserved

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and ssl_object.selected_alpn_protocol() != "h2":
            log.error("the push server did not agree to HTTP/2 (ALPN); closing")
            transport.close()
            return
        self._h2.initiate_connection()
        self.ready = True
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except ProtocolError as exc:
            log.warning("HTTP/2 protocol error from the push server: %r", exc)
            self._abort(Ambiguous(f"protocol error: {exc!r}"))
            return
        for event in events:
            if isinstance(event, ResponseReceived):
                self._on_headers(event.stream_id, event.headers)
            elif isinstance(event, DataReceived):
                self._on_data(event)
            elif isinstance(event, StreamEnded):
                self._finish(event.stream_id)
            elif isinstance(event, StreamReset):
                self._on_reset(event)
            elif isinstance(event, RemoteSettingsChanged):
                self._settings_seen = True
                self._pool.wake()
            elif isinstance(event, WindowUpdated):
                self._resume_blocked()
            elif isinstance(event, ConnectionTerminated):
                self._on_goaway(event)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.ready = False
        reason = f"connection lost ({exc!r})" if exc else "connection closed"
        for stream_id in list(self._streams):
            if self._goaway_last is not None and stream_id > self._goaway_last:
                self._fail(stream_id, Refused(f"stream above GOAWAY's last stream; {reason}"))
            else:
                self._fail(stream_id, Ambiguous(reason))
        self._pool.connection_closed(self)

    # --- events ------------------------------------------------------------------------------

    def _on_headers(self, stream_id: int, headers: Headers) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        for name, value in headers:
            if name == b":status":
                stream.status = int(value)
            else:
                stream.headers[name.decode("latin-1")] = value.decode("latin-1")

    def _on_data(self, event: DataReceived) -> None:
        if event.flow_controlled_length:
            self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        stream = self._streams.get(event.stream_id)
        if stream is not None and event.data:
            stream.body += event.data

    def _on_reset(self, event: StreamReset) -> None:
        if event.error_code == ErrorCodes.REFUSED_STREAM:
            self._fail(event.stream_id, Refused("REFUSED_STREAM"))
        else:
            self._fail(event.stream_id, Ambiguous(f"stream reset by the server ({event.error_code!r})"))

    def _on_goaway(self, event: ConnectionTerminated) -> None:
        self.draining = True
        last = event.last_stream_id if event.last_stream_id is not None else 0
        self._goaway_last = last
        log.info("push server sent GOAWAY (%r, last stream %d)", event.error_code, last)
        for stream_id in [s for s in self._streams if s > last]:
            self._fail(stream_id, Refused("above GOAWAY's last stream"))
        self._pool.connection_draining(self)
        if not self._streams:
            self.close()

    # --- requests ----------------------------------------------------------------------------

    def start(self, headers: Headers, body: bytes, deadline: float) -> asyncio.Future[Response]:
        """Open a stream for a request (the caller holds one of this connection's reserved slots)."""
        self.reserved -= 1
        future: asyncio.Future[Response] = self._loop.create_future()
        if not self.ready or self.draining or self.closed:
            future.set_exception(Refused("connection is closing"))
            self._pool.wake()
            return future
        stream_id = self._h2.get_next_available_stream_id()
        self._opened += 1
        self._h2.known_open = None if self._opened % _PURGE_EVERY == 0 else len(self._streams)
        try:
            self._h2.send_headers(stream_id, headers, end_stream=not body)
        except ProtocolError as exc:  # TooManyStreamsError, or the connection is closing
            future.set_exception(Refused(f"cannot open a stream: {exc!r}"))
            self._pool.wake()
            return future
        stream = _Stream(future)
        stream.timer = self._loop.call_at(deadline, self._expire, stream_id)
        self._streams[stream_id] = stream
        if body:
            stream.pending = body
            self._send_body(stream_id, stream)
        self._schedule_flush()
        return future

    def _send_body(self, stream_id: int, stream: _Stream) -> None:
        while stream.pending:
            window = min(self._h2.local_flow_control_window(stream_id), self._h2.max_outbound_frame_size)
            if window <= 0:
                self._blocked[stream_id] = stream
                return
            chunk, stream.pending = stream.pending[:window], stream.pending[window:]
            self._h2.send_data(stream_id, chunk, end_stream=not stream.pending)
        self._blocked.pop(stream_id, None)

    def _resume_blocked(self) -> None:
        for stream_id, stream in list(self._blocked.items()):
            try:
                self._send_body(stream_id, stream)
            except (ProtocolError, StreamClosedError):
                self._blocked.pop(stream_id, None)
            if stream_id in self._blocked:
                break

    def _expire(self, stream_id: int) -> None:
        if stream_id in self._streams:
            self._reset(stream_id)
            self._fail(stream_id, Ambiguous("no answer before the deadline"))
            self._flush()

    def _reset(self, stream_id: int) -> None:
        with contextlib.suppress(ProtocolError, StreamClosedError):
            self._h2.reset_stream(stream_id, ErrorCodes.CANCEL)

    def _finish(self, stream_id: int) -> None:
        stream = self._release(stream_id)
        if stream is not None and not stream.future.done():
            stream.future.set_result(Response(stream.status, stream.headers, stream.body))

    def _fail(self, stream_id: int, exc: Exception) -> None:
        stream = self._release(stream_id)
        if stream is not None and not stream.future.done():
            stream.future.set_exception(exc)

    def _release(self, stream_id: int) -> _Stream | None:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return None
        self._blocked.pop(stream_id, None)
        if stream.timer is not None:
            stream.timer.cancel()
        if self.draining and not self._streams:
            self.close()
        self._pool.wake()
        return stream

    # --- output ------------------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        # Many requests start in the same loop iteration: they go out together, in groups of
        # FLUSH_EVERY so that the server can start on the first ones while the rest are being prepared.
        self._unflushed += 1
        if self._unflushed >= FLUSH_EVERY:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._unflushed = 0
        data = self._h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _abort(self, exc: Exception) -> None:
        for stream_id in list(self._streams):
            self._fail(stream_id, exc)
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        """Say goodbye (GOAWAY) and close; open streams are failed as ambiguous by connection_lost."""
        if self.closed:
            return
        self.draining = True
        if self._transport is not None and not self._transport.is_closing():
            with contextlib.suppress(ProtocolError):
                self._h2.close_connection()
            self._flush()
            self._transport.close()
