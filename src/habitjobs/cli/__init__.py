"""The `habitjobs` command: each subcommand parses arguments and calls a service; no logic here."""
