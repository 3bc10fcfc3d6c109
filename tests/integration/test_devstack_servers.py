"""The embedded servers for real: durability, the unprivileged PostgreSQL user, leftovers and stale
pidfiles from a killed owner, a port taken by someone else."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis.asyncio as aioredis

from habitjobs.devstack.errors import DevstackError
from habitjobs.devstack.postgres import EmbeddedPostgres
from habitjobs.devstack.privileges import SERVER_USER, running_as_root
from habitjobs.devstack.valkey import EmbeddedValkey
from tests.support.devstack import processes_mentioning, scratch_dir, still_running
from tests.support.net import free_port

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def scratch() -> Iterator[Path]:
    with scratch_dir() as path:
        yield path


async def test_valkey_keeps_writes_across_restarts_and_refuses_to_evict(scratch: Path) -> None:
    valkey = EmbeddedValkey(scratch / "valkey", free_port(), durable=True)
    child = await valkey.start()
    client = aioredis.from_url(valkey.url, decode_responses=True)
    try:
        assert await client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert await client.config_get("appendonly") == {"appendonly": "yes"}
        await client.set("habit", "meditate")
        assert await valkey.stop(child) == 0
        assert not valkey.pidfile.exists()  # a clean stop removes it
    finally:
        await client.aclose()
        await valkey.stop(child)

    child = await valkey.start()
    client = aioredis.from_url(valkey.url, decode_responses=True)
    try:
        assert await client.get("habit") == "meditate"  # replayed from the append-only file
    finally:
        await client.aclose()
        await valkey.stop(child)


async def test_postgres_runs_unprivileged_and_keeps_data_across_restarts(scratch: Path) -> None:
    postgres = EmbeddedPostgres(scratch / "postgres", free_port(), durable=True)
    child = await postgres.start()
    try:
        owner = psutil.Process(child.pid).username()
        if running_as_root():
            # PostgreSQL refuses root: it runs as the system user, which owns the cluster.
            assert owner == SERVER_USER
            assert postgres.data_dir.owner() == SERVER_USER
        else:
            assert owner == psutil.Process().username()
        assert await postgres.ensure_database("habits") is True
        assert await postgres.ensure_database("habits") is False
        conn = await asyncpg.connect(postgres.url("habits"))
        try:
            await conn.execute("CREATE TABLE streak (days int); INSERT INTO streak VALUES (12)")
        finally:
            await conn.close()
        assert await postgres.stop(child) == 0

        child = await postgres.start()
        conn = await asyncpg.connect(postgres.url("habits"))
        try:
            assert await conn.fetchval("SELECT days FROM streak") == 12
        finally:
            await conn.close()
    finally:
        await postgres.stop(child)


_OWNER = """
import asyncio, sys
from pathlib import Path
from habitjobs.devstack.postgres import EmbeddedPostgres
from habitjobs.devstack.valkey import EmbeddedValkey

async def main():
    root, redis_port, pg_port = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    valkey = await EmbeddedValkey(root / "valkey", redis_port, durable=True).start()
    postgres = await EmbeddedPostgres(root / "postgres", pg_port, durable=True).start()
    print(valkey.pid, postgres.pid, flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


async def test_servers_left_by_a_killed_owner_are_stopped_at_the_next_start(scratch: Path) -> None:
    redis_port, pg_port = free_port(), free_port()
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(scratch), str(redis_port), str(pg_port)], stdout=subprocess.PIPE
    )
    try:
        assert owner.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(owner.stdout.readline), 60)
        old_pids = [int(pid) for pid in line.split()]
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    finally:
        if owner.stdout is not None:
            owner.stdout.close()
    orphans = [psutil.Process(pid) for pid in old_pids]
    assert all(proc.is_running() for proc in orphans)  # the servers outlived their owner

    valkey = EmbeddedValkey(scratch / "valkey", redis_port, durable=True)
    postgres = EmbeddedPostgres(scratch / "postgres", pg_port, durable=True)
    valkey_child = await valkey.start()
    postgres_child = await postgres.start()
    try:
        assert still_running(orphans) == []
        assert valkey_child.pid not in old_pids
        assert postgres_child.pid not in old_pids
        conn = await asyncpg.connect(postgres.url())
        await conn.close()
    finally:
        await valkey.stop(valkey_child)
        await postgres.stop(postgres_child)
    assert processes_mentioning(scratch) == []


async def test_stale_pidfiles_naming_other_processes_are_dropped_and_those_processes_left_alone(
    scratch: Path,
) -> None:
    valkey = EmbeddedValkey(scratch / "valkey", free_port(), durable=True)
    postgres = EmbeddedPostgres(scratch / "postgres", free_port(), durable=True)
    await postgres.stop(await postgres.start())  # a cluster exists
    # Owned by the server's user: PostgreSQL takes a pid it may not signal for a dead one.
    bystander = subprocess.Popen(["sleep", "60"], user=SERVER_USER if running_as_root() else None)
    try:
        # As after a crash and a reboot: the recorded pids now belong to an unrelated program.
        valkey.directory.mkdir(parents=True, exist_ok=True)
        valkey.pidfile.write_text(f"{bystander.pid}\n")
        postmaster_pid = postgres.data_dir / "postmaster.pid"
        postmaster_pid.write_text(
            f"{bystander.pid}\n{postgres.data_dir}\n0\n{postgres.port}\n\n\n0 0\nready\n"
        )
        valkey_child = await valkey.start()
        postgres_child = await postgres.start()
        try:
            assert bystander.poll() is None
            conn = await asyncpg.connect(postgres.url())
            await conn.close()
        finally:
            await valkey.stop(valkey_child)
            await postgres.stop(postgres_child)
    finally:
        bystander.kill()
        bystander.wait()


async def test_a_port_taken_by_another_program_is_reported_with_the_setting_to_change(scratch: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        valkey = EmbeddedValkey(
            scratch / "valkey", port, durable=False, port_setting="HABITJOBS_DEV_REDIS_PORT"
        )
        with pytest.raises(DevstackError, match=f"port {port} .*pid {os.getpid()}.*HABITJOBS_DEV_REDIS_PORT"):
            await valkey.start()
    assert processes_mentioning(scratch) == []
