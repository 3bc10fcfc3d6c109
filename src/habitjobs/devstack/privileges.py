"""Running PostgreSQL when we are root (CI, containers): it refuses to, so it runs as a system user.

The user (``habitjobs-dev``, no home, no login shell) is created on first use. It must be able to reach
the data directory and the bundled binaries: directories on the way that others cannot enter get the
search bit for others (``o+x``: enter, not list), and each change is reported.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from habitjobs.devstack.children import RunAs
from habitjobs.devstack.errors import DevstackError

SERVER_USER = "habitjobs-dev"


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def server_user() -> RunAs | None:
    """Who PostgreSQL runs as: None means "as we are" (not root); else the system user, created if new."""
    if not running_as_root():
        return None
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        _create_system_user(SERVER_USER)
        entry = pwd.getpwnam(SERVER_USER)
    return RunAs(name=SERVER_USER, uid=entry.pw_uid, gid=entry.pw_gid)


def _create_system_user(name: str) -> None:
    nologin = next((p for p in ("/usr/sbin/nologin", "/sbin/nologin") if Path(p).exists()), "/bin/false")
    if shutil.which("useradd"):
        command = ["useradd", "--system", "--user-group", "--no-create-home"]
        command += ["--home-dir", "/nonexistent", "--shell", nologin, name]
    elif shutil.which("adduser"):  # BusyBox (Alpine)
        command = ["adduser", "-S", "-D", "-H", "-s", nologin, name]
    else:
        raise DevstackError(
            f"PostgreSQL cannot run as root and there is no useradd/adduser to create the user {name!r}: "
            "create it yourself, or run `habitjobs dev` as an ordinary user"
        )
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        try:
            pwd.getpwnam(name)  # another process created it meanwhile
        except KeyError:
            raise DevstackError(f"could not create system user {name!r}: {result.stderr.strip()}") from None


def make_reachable(path: Path) -> list[Path]:
    """Let other users enter every directory from ``/`` down to ``path``; returns the ones changed."""
    changed: list[Path] = []
    path = path.resolve()
    for directory in [*reversed(path.parents), path]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
            changed.append(directory)
    return changed


def make_readable_tree(root: Path) -> bool:
    """Let other users read ``root``'s files and run its programs (an install made under umask 077).

    Returns whether anything had to change; a normal install needs nothing.
    """
    if (root / "bin" / "postgres").stat().st_mode & stat.S_IXOTH:
        return False
    for dirpath, _dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        here.chmod(stat.S_IMODE(here.stat().st_mode) | stat.S_IROTH | stat.S_IXOTH)
        for filename in filenames:
            file = here / filename
            if file.is_symlink():
                continue
            mode = stat.S_IMODE(file.stat().st_mode)
            extra = stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0)
            file.chmod(mode | extra)
    return True


def hand_over(directory: Path, user: RunAs) -> None:
    """Make ``directory`` the user's own, private to it (PostgreSQL insists on 0700 or 0750)."""
    os.chown(directory, user.uid, user.gid)
    directory.chmod(0o700)
