"""One HTTP/2 connection of the push client, on the sans-IO ``h2`` library (docs/push.md).

It lives on the event loop as an ``asyncio.Protocol``; every method is synchronous. It opens a stream only
while its open streams are below min(the server's MAX_CONCURRENT_STREAMS, the pool's cap) — one stream until
the server's first SETTINGS — and says, for every request that does not get an answer, whether the server
may have processed it:
:class:`Refused` (REFUSED_STREAM, or a stream above GOAWAY's last_stream_id: never processed, resend now),
:class:`Unavailable` (no connection or no free stream before the deadline: nothing was sent),
:class:`Ambiguous` (the connection died or the deadline passed with the request out: it may have arrived).
Responses that arrive after a graceful GOAWAY (streams at or below last_stream_id) are still read.

It does its own socket I/O (TLS through ``ssl.MemoryBIO``, the socket watched with ``add_reader`` /
``add_writer``) rather than an asyncio transport, for one reason: a server may close its socket right after
a GOAWAY and the answers it owes, and the next write then fails (EPIPE, or a reset) while those answers
are still unread in the receive buffer. An asyncio transport stops reading at a write error and drops
them; here a failed write only stops writing, reading goes on until the end of the stream, and only then
is each stream left open resolved: above GOAWAY's last stream → :class:`Refused`, otherwise
:class:`Ambiguous`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import socket
import ssl
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


_READ_SIZE = 256 * 1024
# After a write error, the longest reading goes on for the answers already on their way, should the peer
# never end the stream. Only a safety net: the connection closes as soon as its last stream is resolved
# (answered, or past its own deadline), and a loaded machine must not cut off answers that have arrived.
DRAIN_AFTER_WRITE_ERROR_S = 30.0


class Connection:
    """One TLS connection. Lives on the event loop; every method but :meth:`open` is synchronous."""

    def __init__(self, pool: PoolHooks) -> None:
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self._h2 = _H2(_CONFIG)
        self._h2.encoder = PlainEncoder()
        self._opened = 0
        self._sock: socket.socket | None = None
        self._tls: ssl.SSLObject | None = None
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._wbuf = bytearray()
        self._writing = False  # add_writer is registered
        self._write_failed = False
        self._close_when_flushed = False
        self._drain_timer: asyncio.TimerHandle | None = None
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

    # --- socket and TLS ----------------------------------------------------------------------

    async def open(self, host: str, port: int, ssl_context: ssl.SSLContext, server_hostname: str) -> None:
        """Connect, shake hands (TLS, ALPN h2) and send the connection preface. Raises OSError / SSLError."""
        loop = self._loop
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"cannot resolve {host}")
        sock: socket.socket | None = None
        for family, type_, proto, _name, address in infos:
            candidate = socket.socket(family, type_, proto)
            candidate.setblocking(False)
            try:
                candidate.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await loop.sock_connect(candidate, address)
            except OSError as exc:
                candidate.close()
                error = exc
                continue
            except BaseException:
                candidate.close()
                raise
            sock = candidate
            break
        if sock is None:
            raise error
        self._sock = sock
        try:
            tls = ssl_context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_hostname)
            self._tls = tls
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pass
                pending = self._outgoing.read()
                if pending:
                    await loop.sock_sendall(sock, pending)
                data = await loop.sock_recv(sock, _READ_SIZE)
                if not data:
                    raise ConnectionError("the server closed the connection during the TLS handshake")
                self._incoming.write(data)
            pending = self._outgoing.read()
            if pending:
                await loop.sock_sendall(sock, pending)
            if tls.selected_alpn_protocol() != "h2":
                raise ConnectionError("the push server did not agree to HTTP/2 (ALPN)")
        except BaseException:
            self._sock = None
            sock.close()
            raise
        self._h2.initiate_connection()
        self.ready = True
        loop.add_reader(sock.fileno(), self._on_readable)
        self._flush()
        if self._incoming.pending:
            self._read_tls()

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            # A reset: what arrived before it was read already (the kernel hands queued data out first).
            self._lost(exc)
            return
        if not data:
            self._lost(None)
            return
        self._incoming.write(data)
        self._read_tls()

    def _read_tls(self) -> None:
        tls = self._tls
        if tls is None:
            return
        chunks: list[bytes] = []
        eof = False
        error: Exception | None = None
        while True:
            try:
                chunk = tls.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                eof = True
                break
            except (ssl.SSLError, OSError) as exc:
                error = exc
                break
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
        if chunks:
            self._received(b"".join(chunks))
        if eof or error is not None:
            self._lost(error)

    def _send(self, data: bytes) -> None:
        """Encrypt and write; a write error stops writing only (reading goes on, see the module doc)."""
        if self._tls is None or self._sock is None or self._write_failed:
            return
        if data:
            try:
                self._tls.write(data)
            except ssl.SSLError as exc:
                self._write_error(exc)
                return
        out = self._outgoing.read()
        if not out:
            return
        if self._wbuf:
            self._wbuf += out
            return
        try:
            sent = self._sock.send(out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._write_error(exc)
            return
        if sent < len(out):
            self._wbuf += out[sent:]
            if not self._writing:
                self._writing = True
                self._loop.add_writer(self._sock.fileno(), self._on_writable)

    def _on_writable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sent = sock.send(self._wbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._write_error(exc)
            return
        del self._wbuf[:sent]
        if not self._wbuf:
            self._stop_writing()
            if self._close_when_flushed:
                self._shutdown()

    def _stop_writing(self) -> None:
        if self._writing and self._sock is not None:
            self._loop.remove_writer(self._sock.fileno())
        self._writing = False

    def _write_error(self, exc: Exception) -> None:
        """The peer has closed or reset: stop writing, keep reading what it sent before, until the end."""
        if self._write_failed:
            return
        self._write_failed = True
        self.draining = True
        self._wbuf.clear()
        self._stop_writing()
        quiet = isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.ECONNRESET)
        log.log(logging.INFO if quiet else logging.WARNING, "write to the push server failed: %r", exc)
        self._pool.connection_draining(self)
        if self._close_when_flushed or not self._streams:
            self._shutdown()
            return
        # The reader stays registered: the answers already sent are read, then the end of the stream.
        self._drain_timer = self._loop.call_later(DRAIN_AFTER_WRITE_ERROR_S, self._lost, exc)

    def _shutdown(self) -> None:
        """Close the socket; the streams left open are resolved on the next loop iteration."""
        sock = self._sock
        if sock is None:
            return
        self._loop.call_soon(self._lost, None)

    def _lost(self, exc: Exception | None) -> None:
        """The connection is over: free the socket, resolve every stream left open."""
        if self.closed:
            return
        self.closed = True
        self.ready = False
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        sock, self._sock = self._sock, None
        if sock is not None:
            self._stop_writing_for(sock)
            self._loop.remove_reader(sock.fileno())
            sock.close()
        self._wbuf.clear()
        reason = f"connection lost ({exc!r})" if exc else "connection closed"
        for stream_id in list(self._streams):
            if self._goaway_last is not None and stream_id > self._goaway_last:
                self._fail(stream_id, Refused(f"stream above GOAWAY's last stream; {reason}"))
            else:
                self._fail(stream_id, Ambiguous(reason))
        self._pool.connection_closed(self)

    def _stop_writing_for(self, sock: socket.socket) -> None:
        if self._writing:
            self._loop.remove_writer(sock.fileno())
        self._writing = False

    def _received(self, data: bytes) -> None:
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

    # The answer is handed over before the pool is woken: the task that gets it runs before the waiters, so
    # what the answer decides (a provider pause) is in force when they take their streams.

    def _finish(self, stream_id: int) -> None:
        stream = self._release(stream_id)
        if stream is None:
            return
        if not stream.future.done():
            stream.future.set_result(Response(stream.status, stream.headers, stream.body))
        self._pool.wake()

    def _fail(self, stream_id: int, exc: Exception) -> None:
        stream = self._release(stream_id)
        if stream is None:
            return
        if not stream.future.done():
            stream.future.set_exception(exc)
        self._pool.wake()

    def _release(self, stream_id: int) -> _Stream | None:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return None
        self._blocked.pop(stream_id, None)
        if stream.timer is not None:
            stream.timer.cancel()
        if self.draining and not self._streams:
            self.close()
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
        if data and not self.closed:
            self._send(data)

    def _abort(self, exc: Exception) -> None:
        for stream_id in list(self._streams):
            self._fail(stream_id, exc)
        self._wbuf.clear()
        self._lost(exc)

    def close(self) -> None:
        """Say goodbye (GOAWAY) and close; open streams fail (as ambiguous) once the socket is closed."""
        if self.closed or self._close_when_flushed:
            return
        self.draining = True
        self._close_when_flushed = True
        if self._sock is None:
            self._lost(None)
            return
        if not self._write_failed:
            with contextlib.suppress(ProtocolError):
                self._h2.close_connection()
            self._flush()
        if not self._wbuf or self._write_failed:
            self._shutdown()
        else:  # the goodbye is still being written; a peer that stopped reading does not hold us up
            self._drain_timer = self._loop.call_later(DRAIN_AFTER_WRITE_ERROR_S, self._lost, None)
