"""The users the API tests sign in as: what the ``make_user`` fixture (tests/conftest.py) makes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ApiUser:
    id: uuid.UUID
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class MakeUser(Protocol):
    """Create (or find) a user and mint a token for it; ``admin`` sets the admin flag."""

    async def __call__(self, email: str | None = None, *, admin: bool = False) -> ApiUser: ...
