"""`scripts/test`'s store selection: given URLs, the usual local servers when they answer, else throwaway
embedded servers that are gone when the command ends."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from tests.support.devstack import descendants, processes_mentioning, scratch_dir, still_running
from tests.support.net import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SERVER_NAMES = {"valkey-server", "postgres"}

# Run under the throwaway stores: uses both URLs, prints where they point, exits with status 7.
_PROBE = textwrap.dedent(
    """
    import asyncio, os
    import asyncpg, redis

    async def main():
        conn = await asyncpg.connect(os.environ["HABITJOBS_TEST_DATABASE_URL"])
        print("postgres", await conn.fetchval("SHOW server_version"))
        print("fsync", await conn.fetchval("SHOW fsync"))
        print("data", await conn.fetchval("SHOW data_directory"))
        await conn.close()

    client = redis.Redis.from_url(os.environ["HABITJOBS_TEST_REDIS_URL"], decode_responses=True)
    print("redis", client.info("server")["valkey_version"])
    print("policy", client.config_get("maxmemory-policy")["maxmemory-policy"])
    client.close()
    asyncio.run(main())
    raise SystemExit(7)
    """
)


def run_ephemeral(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "habitjobs.devstack.ephemeral", "--", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


def bare_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HABITJOBS_TEST_")}
    env.update(extra)
    return env


def test_nothing_answering_on_the_usual_ports_starts_throwaway_servers() -> None:
    env = bare_env(
        HABITJOBS_TEST_DEFAULT_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        HABITJOBS_TEST_DEFAULT_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/test",
    )
    result = run_ephemeral(env, sys.executable, "-c", _PROBE)
    assert result.returncode == 7, result.stdout + result.stderr  # the command's status is passed on
    out = dict(line.split(" ", 1) for line in result.stdout.splitlines() if not line.startswith("=="))
    assert out["postgres"].startswith("18.")
    assert out["fsync"] == "off"  # throwaway: durability off
    assert out["redis"].startswith("9.")
    assert out["policy"] == "noeviction"
    assert "HABITJOBS_TEST_REDIS_URL=redis://127.0.0.1:" in result.stdout
    assert result.stdout.count("(embedded: nothing answers at") == 2
    # Everything is gone: the servers and their temporary data directory.
    data_dir = Path(out["data"])
    assert not data_dir.exists()
    assert processes_mentioning(data_dir.parents[1]) == []


def test_given_urls_and_answering_usual_servers_are_used_as_they_are(
    redis_url: str, database_url: str
) -> None:
    env = bare_env(
        HABITJOBS_TEST_DATABASE_URL=database_url,
        HABITJOBS_TEST_DEFAULT_REDIS_URL=redis_url,  # answers: taken without starting anything
    )
    result = run_ephemeral(
        env,
        sys.executable,
        "-c",
        "import os; print(os.environ['HABITJOBS_TEST_REDIS_URL'], os.environ['HABITJOBS_TEST_DATABASE_URL'])",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"{redis_url} {database_url}"
    assert "embedded" not in result.stdout
    assert "(the local server answers)" in result.stdout
    assert "(from HABITJOBS_TEST_DATABASE_URL)" in result.stdout


def test_servers_of_a_killed_run_are_stopped_and_removed_by_the_next_run() -> None:
    with scratch_dir() as temp_root:
        env = bare_env(
            TMPDIR=str(temp_root),
            HABITJOBS_TEST_DEFAULT_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
            HABITJOBS_TEST_DEFAULT_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/test",
        )
        command = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"]
        killed = subprocess.Popen(
            [sys.executable, "-m", "habitjobs.devstack.ephemeral", "--", *command],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert killed.stdout is not None
        with killed.stdout:
            for line in killed.stdout:
                if line == "started\n":
                    break
            runs = list(temp_root.glob("habitjobs-test-*"))
            orphans = processes_mentioning(temp_root)
            assert len(runs) == 1
            assert {p.name() for p in orphans} == SERVER_NAMES
            # The runner and its command die; the servers it started are orphaned.
            command_procs = [p for p in descendants(killed.pid) if p.name() not in SERVER_NAMES]
            for proc in [psutil.Process(killed.pid), *command_procs]:
                proc.kill()
            killed.wait()
        assert all(p.is_running() for p in orphans)  # the servers outlived their run

        result = run_ephemeral(env, sys.executable, "-c", "pass")
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"== removed {runs[0]}, left by a test run that was killed" in result.stdout
        assert still_running(orphans) == []
        assert list(temp_root.glob("habitjobs-test-*")) == []
