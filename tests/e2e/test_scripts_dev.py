"""`./scripts/dev` as a developer uses it: no URL variables, embedded servers, the README's curl sequence,
Ctrl-C, a restart with the data still there, and a restart after the supervisor was SIGKILLed."""

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.devstack import descendants, processes_mentioning, scratch_dir, still_running
from tests.support.net import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(360)]

REPO = Path(__file__).resolve().parents[2]
_STARTUP_TIMEOUT_S = 120


def readme_dev_sequences() -> list[str]:
    """The README's sequences for a running `./scripts/dev`: the bash blocks that source its env file."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.DOTALL)
    matching = [b for b in blocks if "source .habitjobs/env" in b]
    assert any("/v1/me/exports" in b for b in matching), "README lost the curl sequence for ./scripts/dev"
    return matching


class DevRun:
    """One `./scripts/dev` process, its output in a file."""

    def __init__(self, workdir: Path, env: dict[str, str], name: str) -> None:
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(REPO / "scripts" / "dev")], env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=workdir
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> float:
        """Seconds from launch until it printed that it is ready."""
        deadline = self.started + _STARTUP_TIMEOUT_S
        while "ready in" not in self.output():
            if self.proc.poll() is not None:
                raise AssertionError(f"scripts/dev exited with {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"scripts/dev not ready within {_STARTUP_TIMEOUT_S}s:\n{self.output()}")
            time.sleep(0.05)
        return time.monotonic() - self.started

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=90)
        finally:
            self._log.close()

    def kill_all(self) -> None:
        """Clean-up after a failed test: the supervisor and everything it started."""
        for proc in [*descendants(self.proc.pid), psutil.Process(self.proc.pid)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture
def workdir() -> Iterator[Path]:
    with scratch_dir("hj-scripts-dev-") as path:
        yield path


def dev_env(workdir: Path) -> dict[str, str]:
    # Nothing configured: no store URL, no environment name; private ports and data directory.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HABITJOBS_")}
    env.update(
        HABITJOBS_DEV_DATA_DIR=str(workdir / ".habitjobs"),
        HABITJOBS_DEV_REDIS_PORT=str(free_port()),
        HABITJOBS_DEV_POSTGRES_PORT=str(free_port()),
        HABITJOBS_API_PORT=str(free_port()),
    )
    return env


def env_file(workdir: Path) -> dict[str, str]:
    pairs = re.findall(r"^export (\w+)='(.*)'$", (workdir / ".habitjobs" / "env").read_text(), flags=re.M)
    return dict(pairs)


def run_readme_sequence(workdir: Path, sequence: str) -> str:
    """Run one README block as a developer would, from a checkout (here: ``.habitjobs`` and ``.venv``)."""
    if not (workdir / ".venv").exists():
        (workdir / ".venv").symlink_to(REPO / ".venv")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", sequence],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def wait_completed(api: str, token: str, status_url: str, timeout_s: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while True:
        body = httpx.get(f"{api}{status_url}", headers={"Authorization": f"Bearer {token}"}).json()
        if body["state"] == "completed" or time.monotonic() > deadline:
            return body  # type: ignore[no-any-return]
        time.sleep(0.1)


def habit_names(workdir: Path) -> list[str]:
    env = env_file(workdir)
    response = httpx.get(f"{env['API']}/v1/habits", headers={"Authorization": f"Bearer {env['TOKEN']}"})
    assert response.status_code == 200, response.text
    return [h["name"] for h in response.json()]


def test_scripts_dev_runs_the_readme_sequence_and_stops_restarts_and_survives_sigkill(workdir: Path) -> None:
    env = dev_env(workdir)
    data_dir = workdir / ".habitjobs"

    # 1. First start: a new cluster; the README sequence works against it.
    first = DevRun(workdir, env, "first")
    try:
        first_ready_s = first.wait_ready()
        out = first.output()
        assert "embedded Valkey" in out
        assert "embedded PostgreSQL" in out
        assert "new cluster" in out
        assert f"{env_file(workdir)['API']}/docs" in out
        assert f"export TOKEN={env_file(workdir)['TOKEN']}" in out

        # Every README sequence for a running dev stack works, in order; the first is the curl one.
        sequences = readme_dev_sequences()
        outputs = [run_readme_sequence(workdir, sequence) for sequence in sequences]
        sequence_out = next(
            out for seq, out in zip(sequences, outputs, strict=True) if "/v1/me/exports" in seq
        )
        for sequence, output in zip(sequences, outputs, strict=True):
            if "push send-test" in sequence:  # a test push: sent, and received by the fake providers
                assert " sent " in output, output
                assert (data_dir / "push-fakes" / "pushes.jsonl").read_text().strip() != ""
        assert '"email":"dev@example.com"' in sequence_out
        assert sequence_out.count('"name":"Morning run"') == 2  # created, then listed
        status_url = re.findall(r'"id":"(export-[0-9a-f-]+)"', sequence_out)
        assert len(status_url) == 1  # the last curl showed the job
        job = wait_completed(
            env_file(workdir)["API"], env_file(workdir)["TOKEN"], f"/v1/jobs/{status_url[0]}"
        )
        assert job["state"] == "completed", job
        assert job["name"] == "accounts.export_data"

        # The status line reports the finished job (printed as a line when not on a terminal).
        deadline = time.monotonic() + 15
        while not re.search(r"default \d+/\d+/\d+/\d+/[1-9]", first.output()):
            assert time.monotonic() < deadline, first.output()
            time.sleep(0.1)

        # 2. Ctrl-C: everything it started stops; nothing is left.
        started = descendants(first.proc.pid)
        assert {"valkey-server", "postgres"} <= {p.name() for p in started}
        assert first.stop(signal.SIGINT) == 0
    except BaseException:
        first.kill_all()
        raise
    assert still_running(started) == []
    assert processes_mentioning(data_dir) == []
    assert not (data_dir / "env").exists()
    assert not (data_dir / "run.json").exists()

    # 3. Second start: fast, the data is still there.
    second = DevRun(workdir, env, "second")
    try:
        second_ready_s = second.wait_ready()
        assert "new cluster" not in second.output()
        assert habit_names(workdir) == ["Morning run"]
        sourced = env_file(workdir)  # what a second terminal has after `source .habitjobs/env`

        # 4. SIGKILL: the supervisor dies, its children are orphaned and keep running.
        orphans = descendants(second.proc.pid)
        second.proc.send_signal(signal.SIGKILL)
        second.proc.wait(timeout=10)
    except BaseException:
        second.kill_all()
        raise
    finally:
        second._log.close()
    assert still_running(orphans, timeout_s=0.5) != []

    # 5. Third start, from a shell that sourced the env file (its store URLs are the embedded servers'
    # own): leftovers are found and stopped, the embedded servers start again, the data is there.
    third = DevRun(workdir, {**env, **sourced}, "third")
    try:
        third_ready_s = third.wait_ready()
        assert "left running by an earlier run" in third.output()
        assert "embedded Valkey" in third.output()
        assert "embedded PostgreSQL" in third.output()
        assert still_running(orphans) == []
        assert habit_names(workdir) == ["Morning run"]
        started = descendants(third.proc.pid)
        assert third.stop(signal.SIGTERM) == 0
    except BaseException:
        third.kill_all()
        raise
    assert still_running(started) == []
    assert processes_mentioning(data_dir) == []
    timings = (first_ready_s, second_ready_s, third_ready_s)
    print("ready after (first, second, third start): " + ", ".join(f"{t:.1f} s" for t in timings))
    # "Starts in seconds": generous bounds for a loaded 2-core CI machine.
    assert second_ready_s < 30
    assert third_ready_s < 60
