"""The dev stack's data directory (``HABITJOBS_DEV_DATA_DIR``, default ``.habitjobs``) and its files.

valkey/     valkey.conf, valkey.pid, the append-only file, valkey.log
postgres/   data/ (the cluster), postgres.log
dev.lock    held (flock) by the running `habitjobs dev`; the kernel releases it however that ends
run.json    the processes the running supervisor started, so the next start can stop leftovers
env         shell exports for a second terminal (URLs, API, TOKEN); removed at a clean stop
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from habitjobs.devstack.errors import DevstackError
from habitjobs.devstack.procs import ProcessRecord


@dataclass(frozen=True)
class DevLayout:
    root: Path

    @classmethod
    def at(cls, data_dir: str | Path) -> DevLayout:
        return cls(Path(data_dir).expanduser().resolve())

    @property
    def valkey_dir(self) -> Path:
        return self.root / "valkey"

    @property
    def postgres_dir(self) -> Path:
        return self.root / "postgres"

    @property
    def lock_file(self) -> Path:
        return self.root / "dev.lock"

    @property
    def run_file(self) -> Path:
        return self.root / "run.json"

    @property
    def env_file(self) -> Path:
        return self.root / "env"

    def wipe_servers(self) -> list[Path]:
        """Delete the embedded servers' data (``--reset``); returns what was deleted."""
        removed = []
        for directory in (self.valkey_dir, self.postgres_dir):
            if directory.exists():
                shutil.rmtree(directory)
                removed.append(directory)
        return removed

    # --- the processes of the running supervisor ----------------------------------------------

    def read_run(self) -> list[ProcessRecord]:
        try:
            data = json.loads(self.run_file.read_text())
            return [ProcessRecord.from_json(item) for item in data["children"]]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def write_run(self, supervisor_pid: int, children: list[ProcessRecord]) -> None:
        payload = {"supervisor_pid": supervisor_pid, "children": [c.to_json() for c in children]}
        _write_atomically(self.run_file, json.dumps(payload, indent=2) + "\n")

    def write_env(self, exports: dict[str, str]) -> None:
        lines = ["# written by `habitjobs dev`; in another shell: source this file"]
        lines += [f"export {name}='{value}'" for name, value in exports.items()]
        _write_atomically(self.env_file, "\n".join(lines) + "\n", mode=0o600)

    def clear_run(self) -> None:
        self.run_file.unlink(missing_ok=True)
        self.env_file.unlink(missing_ok=True)


class SupervisorLock:
    """An exclusive ``flock`` on ``dev.lock``: one `habitjobs dev` per data directory.

    The kernel drops the lock when the holder exits in any way (SIGKILL included), so a crashed run
    never blocks the next one.
    """

    def __init__(self, layout: DevLayout) -> None:
        self._path = layout.lock_file
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        file = self._path.open("a+")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "?"
            file.close()
            raise DevstackError(
                f"`habitjobs dev` is already running on {self._path.parent} (pid {holder}); "
                "stop it, or give this one its own HABITJOBS_DEV_DATA_DIR"
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._file = file

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.replace(tmp, path)
