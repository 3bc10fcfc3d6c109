"""Slow and broken clients, with real sockets against the API served as `habitjobs api` serves it:
headers that never end, a body that stops, a chunked body that stalls, and one address opening too many
connections. Regression: each of them got no answer after 90 s, before any token check."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from habitjobs.api.app import create_app
from habitjobs.api.server import uvicorn_config
from habitjobs.config import Settings
from habitjobs.resources import Resources
from tests.support.apps import changed
from tests.support.net import free_port, wait_http_ok
from tests.support.users import MakeUser
from tests.support.workers import ApiProcess

# Generous: a time limit of 1 s must show well within it, even on a loaded machine.
ANSWER_WITHIN_S = 15.0


@asynccontextmanager
async def _served(resources: Resources, **limits: Any) -> AsyncIterator[int]:
    settings = changed(resources.settings, **limits)
    port = free_port()
    server = uvicorn.Server(
        uvicorn_config(settings, create_app(settings, resources=resources), host="127.0.0.1", port=port)
    )
    task = asyncio.create_task(server.serve())
    try:
        await wait_http_ok(f"http://127.0.0.1:{port}/healthz")
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


ServeFn = Callable[..., Any]


@pytest.fixture
def serve(resources: Resources) -> ServeFn:
    return lambda **limits: _served(resources, **limits)


async def _exchange(port: int, *parts: bytes, gap_s: float = 0.0) -> tuple[bytes, float]:
    """Send ``parts`` (``gap_s`` apart), never finish the request, and return what comes back once the
    server closes, with how long that took from the connection opening. Sending stops as soon as the
    server answers (writing on would make the closed socket reset, and lose the answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    opened = time.monotonic()
    received = bytearray()

    async def read_all() -> None:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            while chunk := await reader.read(65536):
                received.extend(chunk)

    reading = asyncio.create_task(read_all())
    try:
        for part in parts:
            if received or reading.done():
                break
            try:
                writer.write(part)
                await writer.drain()
            except (ConnectionResetError, BrokenPipeError):
                break  # the server gave up on us already: read its answer
            if gap_s:
                await asyncio.sleep(gap_s)
        await asyncio.wait_for(reading, ANSWER_WITHIN_S)
        return bytes(received), time.monotonic() - opened
    finally:
        reading.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def _status_and_error(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"connection: close" in head.lower()
    return status, json.loads(body)["error"]


async def test_headers_that_never_end_get_408(serve: ServeFn) -> None:
    async with serve(api_header_timeout_s=1.0) as port:
        answer, _ = await _exchange(port, b"GET /v1/habits HTTP/1.1\r\nHost: api\r\nX-Slow: ")
        status, error = _status_and_error(answer)
        assert (status, error["code"]) == (408, "request_timeout")
        assert "headers" in error["message"]

        # Slowloris: one byte at a time keeps the connection busy, not alive.
        drip = [bytes([b]) for b in b"GET /healthz HTTP/1.1\r\nHost: api\r\nX-A: aaaaaaaaaaaaaaaaaaaa"]
        answer, _ = await _exchange(port, *drip, gap_s=0.1)
        assert _status_and_error(answer)[0] == 408

        # Opening a connection and sending nothing holds it no longer either.
        answer, _ = await _exchange(port)
        assert _status_and_error(answer)[0] == 408


async def test_a_body_that_stops_gets_408_before_any_token_check(serve: ServeFn) -> None:
    async with serve(api_body_timeout_s=1.0) as port:
        request = (
            b"POST /v1/habits HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"name": "half'
        )
        answer, _ = await _exchange(port, request)
        status, error = _status_and_error(answer)
        assert (status, error["code"]) == (408, "request_timeout")
        assert "body" in error["message"]


async def test_a_stalled_chunked_body_gets_408(serve: ServeFn) -> None:
    async with serve(api_body_timeout_s=1.0) as port:
        request = (
            b"POST /v1/sync/push HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer not-checked-yet\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'5\r\n{"cli\r\n'
        )
        answer, _ = await _exchange(port, request)
        assert _status_and_error(answer) == (
            408,
            {"code": "request_timeout", "message": "the request body did not arrive within 1 s"},
        )


async def test_good_clients_are_not_affected(serve: ServeFn, make_user: MakeUser) -> None:
    user = await make_user()
    # Keep-alive: requests on one connection, with pauses longer than the limits in between.
    async with (
        serve(api_header_timeout_s=1.0, api_body_timeout_s=1.0) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=user.headers) as http,
    ):
        for i in range(3):
            created = await http.post("/v1/habits", json={"name": f"h{i}"})
            assert created.status_code == 201, created.text
            if i < 2:
                await asyncio.sleep(1.5)  # idle between requests is uvicorn's keep-alive business
        assert len((await http.get("/v1/habits")).json()) == 3


async def test_one_address_holds_at_most_the_cap_of_connections(serve: ServeFn) -> None:
    async with serve(api_max_connections_per_ip=3, api_header_timeout_s=30.0) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        try:
            answer, _ = await _exchange(port)
            status, error = _status_and_error(answer)
            assert (status, error["code"]) == (429, "too_many_connections")
            assert b"retry-after: 5" in answer.lower()
        finally:
            for _, writer in held:
                writer.close()

        # Once they are closed, the address may connect again.
        async def answers() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
            return False

        await _until(answers)


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_habitjobs_api_enforces_the_limits(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    api = ApiProcess(
        settings,
        tmp_path / "api.log",
        port,
        env={"HABITJOBS_API_HEADER_TIMEOUT_S": "1", "HABITJOBS_API_BODY_TIMEOUT_S": "1"},
    )
    try:
        await wait_http_ok(f"{api.base_url}/healthz")
        answer, _ = await _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: api\r\n")
        assert _status_and_error(answer)[0] == 408
        answer, _ = await _exchange(
            port, b"POST /v1/habits HTTP/1.1\r\nHost: api\r\nContent-Length: 10\r\n\r\n{"
        )
        assert _status_and_error(answer)[0] == 408
    finally:
        api.stop()
