"""The dev stack's small parts: server configs, process identity, the run file, the lock, the status line."""

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from habitjobs.config import Settings
from habitjobs.devstack.apps import api_base_url
from habitjobs.devstack.children import describe_exit
from habitjobs.devstack.console import queue_status
from habitjobs.devstack.errors import DevstackError
from habitjobs.devstack.layout import DevLayout, SupervisorLock
from habitjobs.devstack.privileges import make_reachable
from habitjobs.devstack.procs import ProcessRecord
from habitjobs.devstack.valkey import EmbeddedValkey
from habitjobs.queue.operations import QueueSummary
from tests.support.devstack import scratch_dir


def config_lines(valkey: EmbeddedValkey) -> set[str]:
    return set(valkey.config_text().splitlines())


def test_durable_valkey_keeps_an_append_only_file_and_never_evicts(tmp_path: Path) -> None:
    lines = config_lines(EmbeddedValkey(tmp_path, 7001, durable=True))
    assert {"appendonly yes", "appendfsync everysec", "maxmemory-policy noeviction"} <= lines
    assert {"bind 127.0.0.1", "port 7001", f'pidfile "{tmp_path.resolve()}/valkey.pid"'} <= lines


def test_throwaway_valkey_writes_nothing_to_disk_and_never_evicts(tmp_path: Path) -> None:
    lines = config_lines(EmbeddedValkey(tmp_path, 7002, durable=False))
    assert {"appendonly no", 'save ""', "maxmemory-policy noeviction"} <= lines
    assert "appendonly yes" not in lines


def test_a_process_record_matches_only_the_process_it_was_made_for() -> None:
    record = ProcessRecord.of("me", os.getpid(), signal.SIGTERM)
    found = record.find()
    assert found is not None
    assert found.pid == os.getpid()
    # Same pid, different start time: the pid was reused by another program, which must not be touched.
    reused = ProcessRecord(record.name, record.pid, record.started_at - 10, record.stop_signal)
    assert reused.find() is None


def test_a_record_of_an_exited_process_finds_nothing() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    record = ProcessRecord.of("short", proc.pid, signal.SIGTERM)
    proc.wait()
    assert record.find() is None


def test_run_file_round_trip_and_clear(tmp_path: Path) -> None:
    layout = DevLayout.at(tmp_path)
    records = [
        ProcessRecord("api", 10, 1.5, signal.SIGTERM),
        ProcessRecord("postgres", 11, 2.5, signal.SIGINT),
    ]
    layout.write_run(123, records)
    layout.write_env({"TOKEN": "abc"})
    assert layout.read_run() == records
    assert stat.S_IMODE(layout.env_file.stat().st_mode) == 0o600  # it holds a token
    assert "export TOKEN='abc'" in layout.env_file.read_text()
    layout.clear_run()
    assert layout.read_run() == []
    assert not layout.env_file.exists()


def test_a_corrupt_run_file_reads_as_empty(tmp_path: Path) -> None:
    layout = DevLayout.at(tmp_path)
    layout.run_file.write_text("{not json")
    assert layout.read_run() == []


def test_one_supervisor_per_data_directory(tmp_path: Path) -> None:
    layout = DevLayout.at(tmp_path)
    first = SupervisorLock(layout)
    first.acquire()
    try:
        with pytest.raises(DevstackError, match=f"already running .*pid {os.getpid()}"):
            SupervisorLock(layout).acquire()
    finally:
        first.release()
    second = SupervisorLock(layout)
    second.acquire()
    second.release()


def test_the_lock_of_a_killed_supervisor_is_free(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from habitjobs.devstack.layout import DevLayout, SupervisorLock\n"
            "lock = SupervisorLock(DevLayout.at(sys.argv[1]))\n"
            "lock.acquire()\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == b"locked\n"
    with pytest.raises(DevstackError):
        SupervisorLock(DevLayout.at(tmp_path)).acquire()
    holder.kill()
    holder.wait()
    holder.stdout.close()
    lock = SupervisorLock(DevLayout.at(tmp_path))
    lock.acquire()
    lock.release()


def test_make_reachable_adds_only_the_search_bit_where_missing() -> None:
    with scratch_dir() as scratch:  # not tmp_path: that would open up pytest's own 0700 directory
        closed = scratch / "closed"
        inner = closed / "inner"
        inner.mkdir(parents=True)
        closed.chmod(0o700)
        inner.chmod(0o755)
        assert make_reachable(inner) == [closed.resolve()]
        assert stat.S_IMODE(closed.stat().st_mode) == 0o701  # enter, not list
        assert make_reachable(inner) == []


def test_queue_status_line() -> None:
    line = queue_status(
        [
            QueueSummary("sync", "", False, {"waiting": 2, "prioritized": 1, "active": 1, "completed": 7}),
            QueueSummary("push", "", True, {"failed": 3, "delayed": 4}),
        ]
    )
    assert line == "queues waiting/active/delayed/failed/done: sync 3/1/0/0/7 · push 0/0/4/3/0 (paused)"


def test_exit_descriptions() -> None:
    assert describe_exit(0) == "0"
    assert describe_exit(3) == "3"
    assert describe_exit(-signal.SIGTERM) == "SIGTERM"
    assert describe_exit(None) == "running"


def test_api_url_for_a_wildcard_bind_is_loopback() -> None:
    wildcard = Settings(env="test", api_host="0.0.0.0", api_port=8123)
    assert api_base_url(wildcard) == "http://127.0.0.1:8123"
    assert api_base_url(Settings(env="test", api_host="::", api_port=8123)) == "http://[::1]:8123"
