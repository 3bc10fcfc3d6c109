"""What the embedded servers have in common: a port that must be free, a log to show when they fail."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from habitjobs.devstack.errors import DevstackError
from habitjobs.devstack.procs import describe_listener


async def answers(port: int, host: str = "127.0.0.1", timeout_s: float = 1.0) -> bool:
    """Something accepts TCP connections on host:port."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def check_port_free(port: int, what: str, setting: str) -> None:
    if await answers(port):
        hint = f" or choose another port with {setting}" if setting else ""
        raise DevstackError(
            f"port {port} for the embedded {what} is taken by {describe_listener(port)}; stop that{hint}"
        )


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
