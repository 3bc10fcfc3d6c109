"""The Docker image's build, replayed without Docker: the build stage's steps in the Dockerfile's order, a
copy that keeps modification times (as ``COPY`` does), then every entry point started from what it built.

Only paths are moved (``/opt/habitjobs``, ``/build`` and ``/tmp`` into a private directory) and pip may use
its cache; every ``RUN`` runs as written, through ``sh -c``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from habitjobs.config import Settings
from tests.fakes.push import eventually
from tests.support import stores
from tests.support.net import free_port, wait_http_ok
from tests.support.workers import ApiProcess, WorkerProcess, process_env

# Installing the dependencies into a fresh venv takes minutes on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]


def build_stage() -> list[tuple[str, str]]:
    """The first stage's instructions (continuation lines joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    steps: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            if steps:
                break
            continue
        steps.append((instruction.upper(), args.strip()))
    return steps


class Replay:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.places = {"/opt/habitjobs": root / "opt", "/build": root / "build", "/tmp": root / "tmp"}  # noqa: S108
        (root / "tmp").mkdir(parents=True)
        bin_dir = root / "bin"
        bin_dir.mkdir()
        # The image's `python`: this interpreter's base installation (not the test venv).
        python = bin_dir / "python"
        base = getattr(sys, "_base_executable", sys.executable)
        python.write_text(f'#!/bin/sh\nexec "{base}" "$@"\n')
        python.chmod(0o755)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("HABITJOBS_", "VIRTUAL_ENV"))}
        self.env["PATH"] = f"{bin_dir}:{self.env['PATH']}"
        self.workdir = root

    def path(self, text: str) -> str:
        pattern = "|".join(re.escape(p) for p in sorted(self.places, key=len, reverse=True))
        return re.sub(rf"(?<![\w/.-])({pattern})(?=/|\s|$)", lambda m: str(self.places[m[1]]), text)

    def run(self, instruction: str, args: str) -> None:
        if instruction == "ENV":
            for name, value in re.findall(r"(\w+)=(\S+)", args):
                if name != "PIP_NO_CACHE_DIR":  # the pip cache only saves downloads
                    self.env[name] = value
        elif instruction == "WORKDIR":
            self.workdir = Path(self.path(args))
            self.workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            *sources, target = args.split()
            dest = self.workdir / target if not target.startswith("/") else Path(self.path(target))
            for source in sources:
                origin = REPO / source
                if origin.is_dir():
                    shutil.copytree(
                        origin,
                        dest,
                        copy_function=shutil.copy2,
                        dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
                    )
                else:
                    dest.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, dest / origin.name)
        elif instruction == "RUN":
            done = subprocess.run(
                ["/bin/sh", "-c", self.path(args)],
                cwd=self.workdir,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            assert done.returncode == 0, f"RUN {args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        else:
            raise AssertionError(f"the replay does not know {instruction}: extend it")


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    replay = Replay(tmp_path_factory.mktemp("image"))
    steps = build_stage()
    assert [i for i, _ in steps].count("COPY") >= 2  # dependencies first, then the source
    for instruction, args in steps:
        replay.run(instruction, args)
    return replay.places["/opt/habitjobs"]


@pytest.fixture
async def empty_database() -> AsyncIterator[str]:
    admin = stores.base_database_url()
    name = f"hjimage_{os.getpid()}_{secrets.token_hex(3)}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = stores.with_database(admin, name)
    yield url
    await stores.drop_test_database(admin, url)


async def _worker_ready(port: int) -> bool:
    async with httpx.AsyncClient(timeout=3) as http:
        try:
            body = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        except httpx.HTTPError:
            return False
    return "habitjobs_worker_ready 1.0" in body


def test_the_installed_package_is_the_source_not_a_stale_build(image_venv: Path) -> None:
    done = subprocess.run(
        [str(image_venv / "bin" / "python"), "-c", "import habitjobs; print(habitjobs.__file__)"],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    installed = Path(done.stdout.strip()).parent
    assert installed.is_relative_to(image_venv), installed
    source = REPO / "src" / "habitjobs"
    modules = sorted(p.relative_to(source) for p in source.rglob("*.py"))
    assert modules
    for module in modules:
        assert (installed / module).read_bytes() == (source / module).read_bytes(), module
    # Package data (migrations, SQL, static files) came along too.
    data = [p.relative_to(source) for p in source.rglob("*") if p.is_file() and p.suffix in {".sql", ".mako"}]
    for item in data:
        assert (installed / item).exists(), item


async def test_every_entry_point_starts_from_the_built_image(
    image_venv: Path, empty_database: str, redis_url: str, tmp_path: Path
) -> None:
    habitjobs = str(image_venv / "bin" / "habitjobs")
    settings = Settings(
        env="test", database_url=empty_database, redis_url=redis_url, queue_prefix=stores.new_prefix()
    )
    env = process_env(settings)
    env.pop("VIRTUAL_ENV", None)
    upgrade = subprocess.run(
        [habitjobs, "db", "upgrade"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    conn = await asyncpg.connect(empty_database)
    try:
        assert await conn.fetchval("SELECT version_num FROM alembic_version")
    finally:
        await conn.close()

    port = free_port()
    api = ApiProcess(settings, tmp_path / "api.log", port, command=[habitjobs], cwd=tmp_path)
    metrics_port = free_port()
    worker = WorkerProcess(
        settings,
        tmp_path / "worker.log",
        command=[habitjobs],
        cwd=tmp_path,
        env={
            "HABITJOBS_WORKER_METRICS_PORT": str(metrics_port),
            "HABITJOBS_WORKER_METRICS_HOST": "127.0.0.1",
            "HABITJOBS_METRICS_SAMPLE_EVERY_MS": "200",
        },
    )
    try:
        await wait_http_ok(f"{api.base_url}/readyz", timeout_s=60)
        await wait_http_ok(f"{api.base_url}/docs", timeout_s=5)
        await worker.wait_started(timeout_s=60)
        # Ready as its compose health check reads it: serving its queues, both stores reached.
        await eventually(lambda: _worker_ready(metrics_port), timeout_s=30)
    finally:
        api.stop()
        worker.signal(signal.SIGTERM)
        assert await worker.wait_exit() == 0, worker.output()
    await stores.delete_prefix(redis_url, settings.queue_prefix)
