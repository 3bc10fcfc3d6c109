"""Run as a script: request a data export, then die right after the commit, before the enqueue.

Usage: python -m tests.support.crash_between_commit_and_enqueue <user_id>
Prints the export's job id on stdout before dying (exit code 17).
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from habitjobs.accounts import service
from habitjobs.config import Settings
from habitjobs.db.engine import after_commit
from habitjobs.resources import Resources


async def main(user_id: uuid.UUID) -> None:
    resources = Resources.open(Settings())

    async def die() -> None:
        os._exit(17)

    async with resources.db.transaction() as session:
        # Registered first, so it runs before the outbox's own after-commit enqueue.
        after_commit(session, die)
        export, _ = await service.request_export(session, resources.outbox, user_id)
        print(export.job_id, flush=True)


if __name__ == "__main__":
    asyncio.run(main(uuid.UUID(sys.argv[1])))
