"""The pull cursor: a position in the user's change stream, ordered by (server_version, entity rank, id).
Pure.

Clients treat it as opaque. ``"57"`` means "everything up to version 57 seen"; ``"57.2.<uuid>"`` means
"inside version 57, up to this row" (one merge chunk writes many rows under one version, and a page may
end inside it).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from habitjobs.errors import InvalidInput

# A boundary cursor sorts after every row of its version.
_END_RANK = 2**31 - 1
_END_ID = uuid.UUID(int=2**128 - 1)


@dataclass(frozen=True, order=True)
class Cursor:
    version: int
    rank: int = _END_RANK
    id: uuid.UUID = _END_ID

    @property
    def at_boundary(self) -> bool:
        return self.rank == _END_RANK and self.id == _END_ID

    def encode(self) -> str:
        return str(self.version) if self.at_boundary else f"{self.version}.{self.rank}.{self.id}"


START = Cursor(0)


def decode(raw: str | None) -> Cursor:
    """Parse a cursor from a client; a malformed one is a 422 naming ``cursor``."""
    if raw is None or raw == "":
        return START
    parts = raw.split(".")
    try:
        version = int(parts[0])
        if version < 0 or len(parts) not in (1, 3):
            raise ValueError
        if len(parts) == 1:
            return Cursor(version)
        rank = int(parts[1])
        if not 0 <= rank < _END_RANK:
            raise ValueError
        return Cursor(version, rank, uuid.UUID(parts[2]))
    except ValueError:
        raise InvalidInput("cursor is not one this server handed out", field="cursor") from None
