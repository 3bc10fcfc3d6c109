"""`habitjobs push send-test`: a test push travels from the command line through a worker to the fakes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from habitjobs.accounts.repository import get_or_create_user
from habitjobs.config import Settings
from habitjobs.push.fakes import RunningFakes
from habitjobs.queue.names import PUSH
from habitjobs.resources import Resources
from tests.fakes.push import fakes_for_module, settings_for
from tests.support.workers import drain, process_env


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFakes]:
    yield from fakes_for_module(tmp_path_factory)


@pytest.fixture
async def res(settings: Settings, fakes: RunningFakes) -> AsyncIterator[Resources]:
    resources = Resources.open(settings_for(settings, fakes))
    yield resources
    await resources.aclose()


SEND_TEST = [sys.executable, "-m", "habitjobs", "push", "send-test"]


async def test_a_test_push_reaches_the_fake_provider_and_the_command_shows_it(
    res: Resources, fakes: RunningFakes
) -> None:
    email = f"dev-{uuid.uuid4().hex[:6]}@example.com"
    proc = await asyncio.create_subprocess_exec(
        *SEND_TEST,
        "--user",
        email,
        "--fake-device",
        "ios",
        "--wait-s",
        "30",
        env=process_env(res.settings, **fakes.env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        # The command stages the job and waits for its outcome; a worker delivers it meanwhile.
        async def worker_when_staged() -> None:
            while (await res.producer.queue(PUSH).getJobCounts("waiting"))["waiting"] == 0:
                await asyncio.sleep(0.05)
            await drain(res, queues=[PUSH])

        await asyncio.wait_for(worker_when_staged(), 30)
        output = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "staged 1 test deliveries" in output
    assert " sent " in output  # the delivery's status in the printed table
    (arrived,) = [
        r for r in fakes.log.recent() if r.title == "Test notification" and r.token.startswith("dev-")
    ]
    assert arrived.provider == "apns"
    assert arrived.data == {"kind": "test"}


async def test_unknown_users_and_users_without_devices_are_refused_plainly(
    res: Resources, fakes: RunningFakes
) -> None:
    env = process_env(res.settings, **fakes.env)
    unknown = subprocess.run(
        [*SEND_TEST, "--user", "nobody@example.com", "--wait-s", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unknown.returncode == 2
    assert "no user with e-mail nobody@example.com" in unknown.stderr

    async with res.db.transaction() as session:
        await get_or_create_user(session, "bare@example.com")
    bare = subprocess.run(
        [*SEND_TEST, "--user", "bare@example.com", "--wait-s", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bare.returncode == 2
    assert "has no device with push enabled" in bare.stderr


async def test_a_failed_send_job_is_reported_at_once_with_a_failing_exit_code(
    settings: Settings, res: Resources, fakes: RunningFakes
) -> None:
    """The worker's APNs key id is wrong: the provider refuses it, the job fails for good within moments.
    The command says so and exits non-zero, without waiting out its (here very long) wait."""
    email = f"dev-{uuid.uuid4().hex[:6]}@example.com"
    proc = await asyncio.create_subprocess_exec(
        *SEND_TEST,
        "--user",
        email,
        "--fake-device",
        "ios",
        "--wait-s",
        "3600",
        env=process_env(res.settings, **fakes.env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    wrong = Resources.open(settings_for(settings, fakes, push_apns_key_id="ZZZZZZZZZZ"))
    try:

        async def worker_when_staged() -> None:
            while (await res.producer.queue(PUSH).getJobCounts("waiting"))["waiting"] == 0:
                await asyncio.sleep(0.05)
            await drain(wrong, queues=[PUSH])

        await asyncio.wait_for(worker_when_staged(), 30)
        output = (await asyncio.wait_for(proc.communicate(), 60))[0].decode()
    finally:
        await wrong.aclose()
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 1, output
    assert ": failed (attempts 1/" in output
    assert "InvalidProviderToken" in output
    assert "the send job failed: 0 of 1 test deliveries sent" in output
