"""The HTTP API: app factory, dependencies, error handlers, router assembly."""
