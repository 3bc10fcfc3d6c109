"""Baseline job types for ``bench/push.py``, loaded into the measured worker via HABITJOBS_EXTRA_JOB_MODULES.

Both take the same payload as ``push.send_batch`` and keep the same books (lease, one outcome per delivery):

- ``bench.naive_send``: the straightforward sender — one request at a time, awaiting each answer, and one
  UPDATE + commit per delivery right after it. Same HTTP clients as ours.
- ``bench.aioapns_send``: our batch logic (lease, parallel sends, batched outcome writes) with the
  ``aioapns`` client in place of our h2 client, to compare the clients alone.
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import timedelta
from pathlib import Path
from typing import Any

from aioapns import APNs, NotificationRequest, PushType
from aioapns.connection import APNsProductionClientProtocol

from habitjobs.push import repository as repo
from habitjobs.push.dispatch import OutcomeWriter
from habitjobs.push.jobs import SendBatch
from habitjobs.push.repository import OutcomeRow
from habitjobs.push.result import Outcome, SendResult, retry
from habitjobs.push.service import message_for
from habitjobs.queue.names import PUSH
from habitjobs.queue.registry import JobSpec
from habitjobs.queue.retry import NO_RETRY
from habitjobs.resources import JobContext, Resources

_STATUS = {"sent": "sent", "token_invalid": "token_invalid", "bad_request": "failed"}
AIOAPNS_TIMEOUT_S = 10.0


async def _claim(resources: Resources, ids: list[Any]) -> tuple[list[repo.Claimed], Any]:
    now = resources.clock.now()
    lease_until = now + timedelta(seconds=resources.settings.push_lease_s)
    async with resources.db.transaction() as session:
        claimed = await repo.claim(session, ids, now=now, lease_until=lease_until)
    return [c for c in claimed if c.status == "sending"], lease_until


async def naive_send(ctx: JobContext, payload: SendBatch) -> dict[str, int]:
    resources = ctx.resources
    rows, lease_until = await _claim(resources, list(payload.delivery_ids))
    gateway = resources.push()
    for row in rows:
        result = await gateway.send(message_for(row))
        status = _STATUS.get(result.outcome.value, "pending")
        outcome = OutcomeRow(row.id, status, result.message_id, result.reason or None, None)
        async with resources.db.transaction() as session:
            await repo.write_outcomes(session, [outcome], now=resources.clock.now(), lease_until=lease_until)
    return {"sent": len(rows)}


# One aioapns client per worker process and event loop (bench code only).
_clients: dict[int, APNs] = {}


def _aioapns(resources: Resources) -> APNs:
    key = id(asyncio.get_running_loop())
    client = _clients.get(key)
    if client is None:
        s = resources.settings
        host, port = s.push_apns_host.rsplit(":", 1)

        class LocalProtocol(APNsProductionClientProtocol):  # type: ignore[misc]
            APNS_SERVER = host
            APNS_PORT = int(port)

        client = APNs(
            key=Path(str(s.push_apns_key_file)).read_text(),
            key_id=s.push_apns_key_id,
            team_id=s.push_apns_team_id,
            topic=s.push_apns_topic,
            max_connections=s.push_apns_connections,
            ssl_context=ssl.create_default_context(cafile=s.push_ca_file),
        )
        client.pool.protocol_class = LocalProtocol
        _clients[key] = client
    return client


async def aioapns_send(ctx: JobContext, payload: SendBatch) -> dict[str, int]:
    resources = ctx.resources
    rows, lease_until = await _claim(resources, list(payload.delivery_ids))
    client = _aioapns(resources)
    writer = OutcomeWriter(
        resources.db,
        resources.clock,
        lease_until=lease_until,
        flush_ms=resources.settings.push_outcome_flush_ms,
    )

    async def one(row: repo.Claimed) -> None:
        message = message_for(row)
        request = NotificationRequest(
            device_token=message.token,
            message={
                "aps": {"alert": {"title": message.title, "body": message.body}, "sound": "default"},
                **message.data,
            },
            collapse_key=message.collapse_id,
            push_type=PushType.ALERT,
        )
        try:
            answer = await asyncio.wait_for(client.send_notification(request), AIOAPNS_TIMEOUT_S)
            result = (
                SendResult(Outcome.SENT, message_id=answer.notification_id)
                if answer.is_successful
                else SendResult(Outcome.BAD_REQUEST, reason=str(answer.description))
            )
        except TimeoutError:
            result = retry("aioapns: no answer", 1.0)
        writer.add(row, result)

    # aioapns starts with 1000 streams before the server's SETTINGS and never handles REFUSED_STREAM, so a
    # cold connection to a server that starts at one stream leaves requests hanging: prime it alone first.
    if rows:
        await one(rows[0])
    await asyncio.gather(*(one(row) for row in rows[1:]))
    await writer.close()
    return {"sent": len(rows)}


JOBS: list[JobSpec[Any]] = [
    JobSpec("bench.naive_send", PUSH, SendBatch, naive_send, policy=NO_RETRY),
    JobSpec("bench.aioapns_send", PUSH, SendBatch, aioapns_send, policy=NO_RETRY),
]
