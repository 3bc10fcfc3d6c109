"""The whole system as it runs: API and worker processes, real HTTP, Redis and PostgreSQL."""

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from habitjobs.resources import Resources
from tests.support.net import free_port, wait_http_ok
from tests.support.workers import ApiProcess, WorkerProcess, process_env

pytestmark = pytest.mark.slow


async def test_user_habits_and_a_background_job_end_to_end(resources: Resources, tmp_path: Path) -> None:
    settings = resources.settings
    api = ApiProcess(settings, tmp_path / "api.log", free_port())
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        token = subprocess.run(
            [sys.executable, "-m", "habitjobs", "token", "--email", "e2e@example.com"],
            env=process_env(settings),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        await wait_http_ok(f"{api.base_url}/readyz")
        await worker.wait_started()
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=api.base_url, headers=headers, timeout=10) as http:
            me = (await http.patch("/v1/me", json={"timezone": "Europe/Berlin"})).json()
            assert me["email"] == "e2e@example.com"
            routine = (await http.post("/v1/routines", json={"kind": "morning", "name": "Morning"})).json()
            for name in ("Water", "Stretch", "Journal"):
                created = await http.post("/v1/habits", json={"name": name, "routine_id": routine["id"]})
                assert created.status_code == 201, created.text

            started = time.monotonic()
            accepted = await http.post("/v1/me/exports")
            answered_ms = (time.monotonic() - started) * 1000
            assert accepted.status_code == 202, accepted.text
            body = accepted.json()
            assert body["status_url"] == f"/v1/jobs/{body['job_id']}"
            assert answered_ms < 2000  # the API does not wait for the work

            deadline = time.monotonic() + 30
            while True:
                job = (await http.get(body["status_url"])).json()
                if job["state"] in ("completed", "failed") or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert job["state"] == "completed", job
            assert job["name"] == "accounts.export_data"
            assert job["attempts_made"] == 1
            assert job["result"]["rows"] == 4  # one routine and three habits

            export = (await http.get(body["export_url"])).json()
            assert export["status"] == "done"
            assert sorted(h["name"] for h in export["document"]["habits"]) == ["Journal", "Stretch", "Water"]

            # Another user can see neither the job nor the export.
            other = subprocess.run(
                [sys.executable, "-m", "habitjobs", "token", "--email", "other@example.com"],
                env=process_env(settings),
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout.strip()
            stranger = {"Authorization": f"Bearer {other}"}
            assert (await http.get(body["status_url"], headers=stranger)).status_code == 404
            assert (await http.get(body["export_url"], headers=stranger)).status_code == 404
    finally:
        api.stop()
        worker.signal(signal.SIGTERM)
        assert await worker.wait_exit() == 0
