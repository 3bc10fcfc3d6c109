"""`habitjobs dev` with configured stores: no embedded server, the fake push providers wired to the
worker, one supervisor per data directory, `--reset`, and a child that dies takes the group down.
(Ctrl-C and SIGTERM are in test_scripts_dev.py.)"""

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from habitjobs.config import Settings
from tests.support.devstack import descendants, scratch_dir, still_running
from tests.support.net import free_port
from tests.support.workers import process_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture
def workdir() -> Iterator[Path]:
    with scratch_dir("hj-dev-supervisor-") as path:
        yield path


def start_dev(
    settings: Settings, workdir: Path, name: str, *args: str
) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = workdir / f"{name}.log"
    env = process_env(
        settings,
        HABITJOBS_ENV="dev",
        HABITJOBS_DEV_DATA_DIR=str(workdir / "data"),
        HABITJOBS_API_PORT=str(free_port()),
        # Ports nobody listens on: starting an embedded server there would show up as a process.
        HABITJOBS_DEV_REDIS_PORT=str(free_port()),
        HABITJOBS_DEV_POSTGRES_PORT=str(free_port()),
    )
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "habitjobs", "dev", *args], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    return proc, log_path


def wait_for_text(proc: subprocess.Popen[bytes], log_path: Path, text: str, timeout_s: float = 90) -> str:
    deadline = time.monotonic() + timeout_s
    while text not in (out := log_path.read_text(errors="replace")):
        assert proc.poll() is None, f"exited with {proc.returncode}:\n{out}"
        assert time.monotonic() < deadline, f"no {text!r} within {timeout_s}s:\n{out}"
        time.sleep(0.05)
    return out


def test_configured_stores_are_used_and_a_dying_child_stops_the_group(
    settings: Settings, workdir: Path
) -> None:
    data_dir = workdir / "data"
    for leftover in ("valkey", "postgres"):  # what --reset deletes
        (data_dir / leftover).mkdir(parents=True)
    proc, log_path = start_dev(settings, workdir, "dev", "--reset")
    try:
        out = wait_for_text(proc, log_path, "ready in")
        assert f"redis       {settings.redis_url} (HABITJOBS_REDIS_URL)" in out
        assert "(HABITJOBS_DATABASE_URL)" in out
        assert "reset: deleted" in out
        assert not (data_dir / "valkey").exists()
        assert not (data_dir / "postgres").exists()
        children = descendants(proc.pid)
        assert {p.name() for p in children}.isdisjoint({"valkey-server", "postgres"})
        commands = sorted(" ".join(p.cmdline()[2:4]) for p in children)
        assert commands == ["habitjobs api", "habitjobs worker", "habitjobs.push.fakes --dir"]
        # What the fake push providers announced reaches the worker: its pushes go to them.
        worker = next(p for p in children if p.cmdline()[3] == "worker")
        fcm_endpoint = worker.environ()["HABITJOBS_PUSH_FCM_ENDPOINT"]
        assert fcm_endpoint.startswith("https://127.0.0.1:")
        assert "PUSH_FAKES_PUSHES_URL='http://127.0.0.1:" in (data_dir / "env").read_text()

        # A second supervisor on the same data directory is refused, and harms nothing.
        second, second_log = start_dev(settings, workdir, "second")
        assert second.wait(timeout=60) == 2
        assert "already running" in second_log.read_text()
        assert all(p.is_running() for p in children)

        # The worker dies: the supervisor stops the API too and exits with 1.
        worker.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == 1
        assert "worker exited (SIGKILL); stopping everything" in log_path.read_text()
        assert still_running(children) == []
        assert not (data_dir / "run.json").exists()
    finally:
        for child in descendants(proc.pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
