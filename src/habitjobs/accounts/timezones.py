"""IANA zone names: the only way a user's local time is stored."""

from __future__ import annotations

import functools
import zoneinfo

# Present in a system zoneinfo directory but not zones anybody lives in.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@functools.cache
def known_zones() -> frozenset[str]:
    return frozenset(
        name
        for name in zoneinfo.available_timezones()
        if name not in _NOT_ZONES and not name.startswith(("posix/", "right/"))
    )


def is_valid_zone(name: str) -> bool:
    """True for a real IANA name ('Europe/Berlin', 'UTC'); False for 'localtime', paths, typos."""
    return name in known_zones()
