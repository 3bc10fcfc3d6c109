"""Throwaway Redis and PostgreSQL around one command: how `scripts/test` runs on a bare machine.

    python -m habitjobs.devstack.ephemeral -- COMMAND [ARG ...]

For each store, in this order:
1. ``HABITJOBS_TEST_REDIS_URL`` / ``HABITJOBS_TEST_DATABASE_URL`` when set;
2. the usual local server, when something answers on its port: ``HABITJOBS_TEST_DEFAULT_REDIS_URL`` /
   ``HABITJOBS_TEST_DEFAULT_DATABASE_URL`` (default ``redis://127.0.0.1:6379/0`` /
   ``postgresql://postgres@127.0.0.1:5432/test``) — point one at an unused port to force step 3;
3. an embedded server on a free loopback port, data in a temporary directory, durability off; it is
   stopped and its directory deleted when the command ends.

The command gets the chosen URLs in ``HABITJOBS_TEST_*_URL``; its exit status becomes ours.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from habitjobs.devstack.children import Child
from habitjobs.devstack.errors import DevstackError
from habitjobs.devstack.postgres import EmbeddedPostgres
from habitjobs.devstack.procs import ProcessRecord
from habitjobs.devstack.servers import answers
from habitjobs.devstack.valkey import EmbeddedValkey

REDIS = "HABITJOBS_TEST_REDIS_URL"
DATABASE = "HABITJOBS_TEST_DATABASE_URL"
DEFAULTS = {
    REDIS: ("HABITJOBS_TEST_DEFAULT_REDIS_URL", "redis://127.0.0.1:6379/0", 6379),
    DATABASE: ("HABITJOBS_TEST_DEFAULT_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test", 5432),
}


@dataclass(frozen=True)
class Choice:
    variable: str
    url: str | None  # None: start an embedded server
    reason: str


async def choose(env: Mapping[str, str]) -> list[Choice]:
    choices = []
    for variable, (default_variable, default_url, default_port) in DEFAULTS.items():
        if env.get(variable):
            choices.append(Choice(variable, env[variable], f"from {variable}"))
            continue
        candidate = env.get(default_variable) or default_url
        parts = urlsplit(candidate)
        if await answers(parts.port or default_port, parts.hostname or "127.0.0.1"):
            choices.append(Choice(variable, candidate, "the local server answers"))
        else:
            choices.append(Choice(variable, None, f"nothing answers at {parts.hostname}:{parts.port}"))
    return choices


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_PREFIX = "habitjobs-test-"
_OWNER_FILE = "owner.json"


class ThrowawayStores:
    """The embedded servers one run needs, in one temporary directory that names its owner (this
    process), so that a later run can clean up after one that was killed."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix=_PREFIX))
        # Enterable (not listable) by others: as root, PostgreSQL runs as another user and must reach it.
        self.directory.chmod(0o711)
        owner = ProcessRecord.of("ephemeral", os.getpid(), signal.SIGTERM)
        (self.directory / _OWNER_FILE).write_text(json.dumps(owner.to_json()))
        self._running: list[tuple[EmbeddedValkey | EmbeddedPostgres, Child]] = []

    async def start(self, variable: str) -> str:
        if variable == REDIS:
            valkey = EmbeddedValkey(self.directory / "valkey", free_port(), durable=False)
            self._running.append((valkey, await valkey.start()))
            return valkey.url
        postgres = EmbeddedPostgres(self.directory / "postgres", free_port(), durable=False)
        self._running.append((postgres, await postgres.start()))
        return postgres.url("postgres")

    async def stop(self) -> None:
        await asyncio.gather(*(store.stop(child) for store, child in self._running))
        self._running.clear()
        await asyncio.to_thread(shutil.rmtree, self.directory, True)


def _abandoned(temp_root: Path) -> list[Path]:
    """Directories of earlier runs whose owner is gone."""
    found = []
    for directory in temp_root.glob(f"{_PREFIX}*"):
        try:
            owner = ProcessRecord.from_json(json.loads((directory / _OWNER_FILE).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being created right now, or not ours
        if owner.find() is None:
            found.append(directory)
    return found


async def sweep_abandoned(temp_root: Path | None = None) -> list[Path]:
    """Stop the servers of earlier runs whose owner is gone (killed) and delete their directories."""
    swept = await asyncio.to_thread(_abandoned, temp_root or Path(tempfile.gettempdir()))
    for directory in swept:
        await EmbeddedValkey(directory / "valkey", 0, durable=False).stop_leftover()
        await EmbeddedPostgres(directory / "postgres", 0, durable=False).stop_leftover()
        await asyncio.to_thread(shutil.rmtree, directory, True)
    return swept


async def run_with_stores(command: Sequence[str]) -> int:
    env = dict(os.environ)
    for directory in await sweep_abandoned():
        print(f"== removed {directory}, left by a test run that was killed", flush=True)
    stores = ThrowawayStores()
    try:
        for choice in await choose(env):
            url = choice.url
            if url is None:
                url = await stores.start(choice.variable)
                print(f"== {choice.variable}={url} (embedded: {choice.reason})", flush=True)
            else:
                print(f"== {choice.variable}={url} ({choice.reason})", flush=True)
            env[choice.variable] = url
        return await _run(command, env)
    finally:
        await stores.stop()


async def _run(command: Sequence[str], env: dict[str, str]) -> int:
    """Run the command in our process group: a terminal's Ctrl-C reaches it directly, and we wait for
    it to finish before stopping the servers; SIGTERM sent to us is passed on."""
    process = await asyncio.create_subprocess_exec(*command, env=env)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    loop.add_signal_handler(signal.SIGTERM, process.send_signal, signal.SIGTERM)
    try:
        code = await process.wait()
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        loop.remove_signal_handler(signal.SIGTERM)
    return code if code >= 0 else 128 - code


def main(argv: Sequence[str]) -> int:
    command = list(argv[1:] if argv and argv[0] == "--" else argv)
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        return asyncio.run(run_with_stores(command))
    except DevstackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
