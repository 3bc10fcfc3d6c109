"""The fake APNs provider API on raw ``h2``, for frame-level behaviour httpx-style clients trip over.

- 200 is a HEADERS frame with END_STREAM and no body; errors carry a JSON body ``{"reason", "timestamp"}``.
- MAX_CONCURRENT_STREAMS starts at ``apns_initial_streams`` (1) and rises to ``apns_max_streams`` (1000)
  after the first accepted push; after any rejected push it drops to 1 again until the next success.
  Streams arriving above the current limit are reset with REFUSED_STREAM (never processed).
- A graceful GOAWAY after ``apns_goaway_every`` streams: streams up to its last_stream_id are answered,
  later ones are ignored (the client must resend them); once everything owed is answered this side closes
  the connection at once, as a real server may: the client's next write then fails (EPIPE or a reset)
  while the last answers and the GOAWAY may still be unread in its socket buffer.
- The provider token (ES256) is verified; the device token's prefix picks the outcome (see ``outcomes``).

SETTINGS and GOAWAY are written as raw frames beside h2's output: h2 would otherwise enforce the lowered
limit as a connection error, and refuse to finish the streams it still owes an answer after its GOAWAY.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import time
import uuid
from dataclasses import dataclass, field

import jwt
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded, StreamReset
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame, SettingsFrame

from habitjobs.push.fakes.outcomes import Behaviour, prefix, unregistered_at_ms
from habitjobs.push.fakes.pushlog import PushLog, Received
from habitjobs.push.h2conn import PlainEncoder

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 4096
PROVIDER_TOKEN_MAX_AGE_S = 3600
CONNECTION_WINDOW = 16 * 1024 * 1024
FLUSH_EVERY = 16

_REJECTIONS = {
    "baddevice": (400, "BadDeviceToken"),
    "badtoken": (400, "BadDeviceToken"),
    "badpayload": (400, "BadExpirationDate"),
    "notopic": (400, "DeviceTokenNotForTopic"),
    "toolarge": (413, "PayloadTooLarge"),
    "toomany": (429, "TooManyRequests"),
    "quota": (429, "TooManyRequests"),
    "unavailable": (503, "ServiceUnavailable"),
    "internal": (500, "InternalServerError"),
}


@dataclass
class ApnsStats:
    connections: int = 0
    streams: int = 0
    refused: int = 0
    goaways: int = 0
    rejected: int = 0
    throttles: int = 0  # times the stream limit dropped to 1 after a rejection


@dataclass
class _Request:
    headers: dict[str, str]
    body: bytearray = field(default_factory=bytearray)


class FakeApns:
    """Shared state of the fake APNs servers (production and sandbox listen on their own ports)."""

    def __init__(
        self,
        log: PushLog,
        behaviour: Behaviour,
        *,
        public_key_pem: bytes,
        key_id: str,
        team_id: str,
        topic: str,
    ) -> None:
        self.log = log
        self.behaviour = behaviour
        self.public_key_pem = public_key_pem
        self.key_id = key_id
        self.team_id = team_id
        self.topic = topic
        self.stats = ApnsStats()
        self._verified: dict[str, tuple[str | None, float]] = {}  # provider token → (error reason, iat)
        self.servers: list[asyncio.Server] = []

    def check_provider_token(self, authorization: str) -> str | None:
        """None when the bearer token is good, else the APNs reason."""
        if not authorization.lower().startswith("bearer "):
            return "MissingProviderToken"
        token = authorization[7:]
        cached = self._verified.get(token)
        if cached is None:
            reason: str | None = None
            issued = 0.0
            try:
                header = jwt.get_unverified_header(token)
                claims = jwt.decode(
                    token, self.public_key_pem, algorithms=["ES256"], options={"verify_iat": False}
                )
                issued = float(claims.get("iat", 0))
                if header.get("kid") != self.key_id or claims.get("iss") != self.team_id:
                    reason = "InvalidProviderToken"
            except jwt.PyJWTError:
                reason = "InvalidProviderToken"
            cached = self._verified[token] = (reason, issued)
        reason, issued = cached
        if reason is None and time.time() - issued > PROVIDER_TOKEN_MAX_AGE_S:
            return "ExpiredProviderToken"
        return reason

    async def listen(self, sock: socket.socket, env: str, context: ssl.SSLContext) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _ApnsConnection(self, env), sock=sock, ssl=context)
        self.servers.append(server)

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for server in self.servers:
            await server.wait_closed()


class _ServerH2(H2Connection):
    """h2 scans every stream on each new inbound stream to count the open ones; the fake enforces its own
    limit, so h2's count is only needed now and then (the scan also purges closed streams)."""

    _calls = 0

    @property
    def open_inbound_streams(self) -> int:
        self._calls += 1
        return super().open_inbound_streams if self._calls % 64 == 0 else 0


class _ApnsConnection(asyncio.Protocol):
    def __init__(self, fake: FakeApns, env: str) -> None:
        self.fake = fake
        self.env = env
        self.behaviour = fake.behaviour
        self.loop = asyncio.get_running_loop()
        config = H2Configuration(client_side=False, header_encoding="utf-8", validate_inbound_headers=False)
        self.h2 = _ServerH2(config)
        self.h2.encoder = PlainEncoder()
        self._flush_scheduled = False
        self._unflushed = 0
        # h2 must accept any number of streams: the advertised limit is enforced here, as REFUSED_STREAM.
        self.h2.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: 2**31 - 1,
                SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
            },
        )
        self.transport: asyncio.Transport | None = None
        self.limit = self.behaviour.apns_initial_streams
        self.open: dict[int, _Request] = {}
        self.accepted = 0
        self.arrived = 0
        self.goaway_last: int | None = None

    # --- frames h2 must not know about ---------------------------------------------------------

    def _write_raw(self, frame: bytes) -> None:
        self._flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def _advertise(self, limit: int) -> None:
        if limit != self.limit:
            self.limit = limit
            self._write_raw(
                SettingsFrame(0, settings={int(SettingCodes.MAX_CONCURRENT_STREAMS): limit}).serialize()
            )

    def _goaway(self, last_stream_id: int) -> None:
        self.goaway_last = last_stream_id
        self.fake.stats.goaways += 1
        self._write_raw(GoAwayFrame(0, last_stream_id=last_stream_id, error_code=0).serialize())

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.fake.stats.connections += 1
        self.h2.initiate_connection()
        self.h2.data_to_send()  # replaced by our own first SETTINGS
        settings = {
            int(SettingCodes.MAX_CONCURRENT_STREAMS): self.limit,
            int(SettingCodes.MAX_HEADER_LIST_SIZE): 65536,
        }
        transport.write(SettingsFrame(0, settings=settings).serialize())
        # A roomy connection window: hundreds of small request bodies in flight at once.
        self.h2.increment_flow_control_window(CONNECTION_WINDOW - 65535)
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as exc:
            log.warning("fake APNs: protocol error from the client: %r", exc)
            self._flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            if isinstance(event, RequestReceived):
                self._on_request(event.stream_id, dict(event.headers or []))  # type: ignore[arg-type]
            elif isinstance(event, DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                request = self.open.get(event.stream_id)
                if request is not None:
                    request.body += event.data or b""
            elif isinstance(event, StreamEnded):
                if event.stream_id in self.open:
                    self._schedule(event.stream_id)
            elif isinstance(event, StreamReset):
                self.open.pop(event.stream_id, None)
            elif isinstance(event, ConnectionTerminated) and self.transport is not None:
                self.transport.close()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.open.clear()
        self.transport = None

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _schedule_flush(self) -> None:
        # Answers go out in small groups, so the client can work on them while the rest are prepared.
        self._unflushed += 1
        if self._unflushed >= FLUSH_EVERY:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._unflushed = 0
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    # --- requests ------------------------------------------------------------------------------

    def _on_request(self, stream_id: int, headers: dict[str, str]) -> None:
        self.fake.log.count_request()
        if self.goaway_last is not None and stream_id > self.goaway_last:
            return  # after our GOAWAY: never processed, never answered (the client resends it)
        self.arrived += 1
        refuse_every = self.behaviour.apns_refuse_every
        if len(self.open) >= self.limit or (refuse_every and self.arrived % refuse_every == 0):
            self.fake.stats.refused += 1
            self.h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            return
        self.fake.stats.streams += 1
        self.open[stream_id] = _Request(headers)
        self.accepted += 1
        every = self.behaviour.apns_goaway_every
        if every and self.accepted % every == 0 and self.goaway_last is None:
            self._goaway(stream_id)

    def _schedule(self, stream_id: int) -> None:
        request = self.open[stream_id]
        token = request.headers.get(":path", "").rsplit("/", 1)[-1]
        delay = self.behaviour.latency_ms / 1000
        if self.env == "sandbox" and self.behaviour.apns_sandbox_silent:
            return  # never answered
        if prefix(token) == "slow":
            delay += self.behaviour.slow_s
        if delay > 0:
            self.loop.call_later(delay, self._answer, stream_id)
        else:
            self._answer(stream_id)

    def _answer(self, stream_id: int) -> None:
        request = self.open.pop(stream_id, None)
        if request is None or self.transport is None:
            return
        headers = request.headers
        apns_id = headers.get("apns-id") or str(uuid.uuid4())
        token = headers.get(":path", "").rsplit("/", 1)[-1]
        if prefix(token) == "drop":
            self.transport.abort()
            return
        status, reason, extra = self._decide(headers, token, bytes(request.body))
        try:
            if status == 200:
                self.h2.send_headers(stream_id, [(":status", "200"), ("apns-id", apns_id)], end_stream=True)
            else:
                self.h2.send_headers(
                    stream_id,
                    [(":status", str(status)), ("apns-id", apns_id), ("content-type", "application/json")],
                )
                self.h2.send_data(
                    stream_id, json.dumps({"reason": reason, **extra}).encode(), end_stream=True
                )
        except (StreamClosedError, ProtocolError):
            return  # the client cancelled the stream (its deadline passed) before the answer
        if status == 200:
            self._record(headers, token, bytes(request.body))
            self._advertise(self.behaviour.apns_max_streams)
        else:
            self.fake.stats.rejected += 1
            if self.behaviour.apns_throttle_on_reject and self.limit > 1:
                self.fake.stats.throttles += 1
                self._advertise(1)
        if self.goaway_last is not None and not self.open:
            self._flush()
            # Everything owed is answered: close at once. Nothing obliges a server to wait for the client,
            # and the client's next write then fails while the answers are still in its receive buffer.
            self._close()
        else:
            self._schedule_flush()

    def _decide(self, headers: dict[str, str], token: str, body: bytes) -> tuple[int, str, dict[str, object]]:
        if headers.get(":method") != "POST":
            return 405, "MethodNotAllowed", {}
        if not headers.get(":path", "").startswith("/3/device/") or not token:
            return 404, "BadPath", {}
        auth_error = self.fake.check_provider_token(headers.get("authorization", ""))
        if self.env == "sandbox" and self.behaviour.apns_sandbox_refuses_key:
            auth_error = "InvalidProviderToken"
        if auth_error is not None:
            return 403, auth_error, {}
        topic = headers.get("apns-topic")
        if not topic:
            return 400, "MissingTopic", {}
        if topic != self.fake.topic:
            return 400, "TopicDisallowed", {}
        if len(body) > MAX_PAYLOAD_BYTES:
            return 413, "PayloadTooLarge", {}
        if len(headers.get("apns-collapse-id", "").encode()) > 64:
            return 400, "BadCollapseId", {}
        kind = prefix(token)
        if kind in ("unregistered", "dead"):
            return 410, "Unregistered", {"timestamp": unregistered_at_ms(token, int(time.time() * 1000))}
        if kind == "sandbox" and self.env != "sandbox":
            return 400, "BadDeviceToken", {}
        if kind in _REJECTIONS:
            status, reason = _REJECTIONS[kind]
            return status, reason, {}
        return 200, "", {}

    def _record(self, headers: dict[str, str], token: str, body: bytes) -> None:
        try:
            document = json.loads(body)
        except ValueError:
            document = {}
        alert = (document.get("aps") or {}).get("alert") or {}
        self.fake.log.add(
            Received(
                provider="apns",
                env=self.env,
                token=token,
                collapse_id=headers.get("apns-collapse-id", ""),
                title=str(alert.get("title", "")),
                body=str(alert.get("body", "")),
                data={k: v for k, v in document.items() if k != "aps"},
            )
        )
