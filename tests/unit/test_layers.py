"""The imports of ``src/habitjobs`` run one way: down the layers of docs/architecture.md, with no circle.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import`` anywhere in a module
(type-only imports under ``TYPE_CHECKING`` and imports inside functions included), relative imports
resolved, ``from package import module`` counted as an import of that module. The layer order, the
documented sibling interfaces and the exceptions are data below; docs/architecture.md draws them.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "habitjobs"

# Packages that are domains: a domain reaches another domain only through the sibling's interface below.
DOMAINS = {
    "accounts",
    "admin",
    "analytics",
    "dashboard",
    "habits",
    "maintenance",
    "push",
    "reminders",
    "sync",
}

# The layers from the top down. A module belongs to the first layer with a pattern that matches its dotted
# name (patterns are fnmatch patterns; ``*`` crosses dots). A module may import modules of lower layers; in
# its own layer only modules of its own package (the first component under habitjobs), except in the
# layers marked shared, whose modules import each other freely.
LAYERS: list[tuple[str, list[str]]] = [
    # The command line: it starts every other program.
    ("commands", ["habitjobs.__main__", "habitjobs.cli", "habitjobs.cli.*"]),
    (
        "programs",
        [
            "habitjobs.api.app",
            "habitjobs.api.server",
            "habitjobs.devstack",
            "habitjobs.devstack.*",
            # The fake push providers are a program of their own (`python -m habitjobs.push.fakes`).
            "habitjobs.push.fakes",
            "habitjobs.push.fakes.*",
        ],
    ),
    # What gathers every domain: the job catalog and the models that alembic compares with the migrations.
    ("composition", ["habitjobs.catalog", "habitjobs.db.all_models"]),
    # How the outside reaches a domain: HTTP routes (and the API's request plumbing) and job handlers.
    (
        "routes and handlers",
        [
            "habitjobs.api.health",
            "habitjobs.api.jobs",
            "habitjobs.*.routes",
            "habitjobs.*.jobs",
            "habitjobs.admin.*",
        ],
    ),
    # What every route shares: the request's principal and resources, rate limits, error bodies.
    ("request plumbing", ["habitjobs.api", "habitjobs.api.*"]),
    (
        "services",
        [
            "habitjobs.*.service",
            "habitjobs.accounts.deletion",
            "habitjobs.accounts.tokens",
            "habitjobs.push.dispatch",
            "habitjobs.push.testsend",
            "habitjobs.reminders.tick",
            "habitjobs.sync.intake",
            "habitjobs.sync.merge",
        ],
    ),
    # The clients a process opens once; services and handlers reach them through it.
    ("resources", ["habitjobs.resources"]),
    # Repositories, models, schemas, pure rules and the clients of outside services, per domain.
    (
        "repositories and rules",
        [f"habitjobs.{domain}{tail}" for domain in sorted(DOMAINS) for tail in ("", ".*")],
    ),
    # What several domains share: owned-entity access, the API's write stamp, the user's version bump.
    ("shared rows", ["habitjobs.owned"]),
    (
        "foundation",
        [
            "habitjobs",
            "habitjobs.queue",
            "habitjobs.queue.*",
            "habitjobs.db",
            "habitjobs.db.*",
            "habitjobs.config",
            "habitjobs.clock",
            "habitjobs.errors",
            "habitjobs.bounds",
            "habitjobs.caps",
            "habitjobs.logs",
            "habitjobs.outage",
            "habitjobs.weekdays",
            # Metrics, log context and traces: every layer reports through them.
            "habitjobs.observability",
            "habitjobs.observability.*",
        ],
    ),
]

# Layers whose modules may import each other across packages (still without a circle).
SHARED_LAYERS = {"commands", "programs", "composition", "foundation"}

# A domain's interface to its siblings: module -> why the others may use it. Imports of these from another
# domain are allowed when they also go down or sideways (never up) the layers.
SIBLING_INTERFACES: dict[str, str] = {
    "habitjobs.accounts.models": "the user and device rows every owned row points to",
    "habitjobs.accounts.schemas": "the account's value types (Timezone) other payloads carry",
    "habitjobs.accounts.timezones": "the user's local day, the unit of every per-day rule",
    "habitjobs.habits.models": "habits, completions, routines, focus sessions: what others count",
    "habitjobs.reminders.models": "the reminder rows that sync carries",
    "habitjobs.reminders.schemas": "the reminder kinds that sync validates",
    "habitjobs.push.schemas": "the notification a domain asks push to send",
    "habitjobs.push.service": "how a domain asks for a push fan-out (create_fan_out, send_jobs)",
    "habitjobs.accounts.signin": "whether a user may still write (refusals): the upload group commit asks",
}


@dataclass(frozen=True)
class Excepted:
    importer: str
    imported: str
    reason: str
    # True when the import also closes a circle: the circle test leaves it out (and only it).
    in_circle: bool = False


# Imports that go against the order today, each with why it stays. The test fails when one of them no
# longer exists or no longer goes against the order, so this list only shrinks.
EXCEPTIONS: list[Excepted] = [
    Excepted(
        "habitjobs.resources",
        "habitjobs.catalog",
        "Resources.open() builds the full job registry when the caller passes none; the import is lazy "
        "(inside the function): a default of the composition root, not a dependency of the type",
        in_circle=True,
    ),
    Excepted(
        "habitjobs.accounts.service",
        "habitjobs.habits.repository",
        "the data export reads the user's rows with the habits' export queries",
    ),
    Excepted(
        "habitjobs.accounts.service",
        "habitjobs.reminders.service",
        "a timezone change reschedules the user's reminders",
    ),
    Excepted(
        "habitjobs.sync.merge",
        "habitjobs.reminders.service",
        "merged reminders get their next firing time (refresh_next_fire)",
    ),
    Excepted(
        "habitjobs.sync.jobs",
        "habitjobs.analytics.jobs",
        "a merged batch asks for the analytics recompute of what it touched",
    ),
    Excepted(
        "habitjobs.push.testsend",
        "habitjobs.accounts.service",
        "`push send-test --fake-device` registers a made-up device the way the API registers one",
    ),
    Excepted(
        "habitjobs.push.testsend",
        "habitjobs.accounts.repository",
        "`push send-test --fake-device` creates the user if new, as `habitjobs token` does",
    ),
    Excepted(
        "habitjobs.accounts.jobs",
        "habitjobs.dashboard.sessions",
        "an account's deletion closes the user's dashboard sessions",
    ),
    Excepted(
        "habitjobs.dashboard.routes",
        "habitjobs.accounts.repository",
        "a dashboard session is checked against the operator's current account (principal_by_id)",
    ),
    Excepted(
        "habitjobs.maintenance.jobs",
        "habitjobs.accounts.service",
        "retention removes expired exports through the accounts service",
    ),
    Excepted(
        "habitjobs.maintenance.jobs",
        "habitjobs.analytics.service",
        "retention gathers every domain's rules: analytics' finished runs",
    ),
    Excepted(
        "habitjobs.maintenance.jobs",
        "habitjobs.sync.service",
        "retention gathers every domain's rules: sync's tombstones and upload status rows",
    ),
    Excepted(
        "habitjobs.maintenance.jobs",
        "habitjobs.sync.models",
        "partition maintenance keeps the upload payload table's partitions (its partition plan)",
    ),
]


def module_files() -> dict[str, tuple[Path, bool]]:
    """Every module of the package (migrations excepted: alembic loads them by path) -> (file, is package)."""
    modules: dict[str, tuple[Path, bool]] = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        modules[".".join(parts)] = (path, is_package)
    return modules


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    targets.add(submodule if submodule in modules else source)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def layer_of(module: str) -> int:
    """The index in LAYERS (0 is the top)."""
    for index, (_, patterns) in enumerate(LAYERS):
        if any(fnmatchcase(module, pattern) for pattern in patterns):
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def violation(importer: str, imported: str) -> str | None:
    """Why this import goes against the order, or None."""
    low, high = layer_of(importer), layer_of(imported)
    if high < low:
        return f"{LAYERS[low][0]} -> {LAYERS[high][0]} (upward)"
    same_package = package_of(importer) == package_of(imported)
    if (
        not same_package
        and package_of(importer) in DOMAINS
        and package_of(imported) in DOMAINS
        and imported not in SIBLING_INTERFACES
    ):
        return f"{package_of(importer)} -> {package_of(imported)}: not a documented sibling interface"
    if high == low and not same_package and LAYERS[low][0] not in SHARED_LAYERS:
        if imported in SIBLING_INTERFACES:
            return None
        return f"sideways in {LAYERS[low][0]} across packages"
    return None


def excepted() -> set[tuple[str, str]]:
    return {(e.importer, e.imported) for e in EXCEPTIONS}


def cut() -> set[tuple[str, str]]:
    return {(e.importer, e.imported) for e in EXCEPTIONS if e.in_circle}


def test_every_module_has_a_layer() -> None:
    for module in module_files():
        layer_of(module)


def test_imports_follow_the_layers() -> None:
    graph = import_graph()
    allowed = excepted()
    found = sorted(
        f"{a} -> {b}: {why}"
        for a, targets in graph.items()
        for b in targets
        if (why := violation(a, b)) and (a, b) not in allowed
    )
    assert found == [], "imports against the layer order (docs/architecture.md):\n" + "\n".join(found)


def test_exceptions_are_still_needed() -> None:
    graph = import_graph()
    stale = sorted(
        f"{e.importer} -> {e.imported}"
        for e in EXCEPTIONS
        if e.imported not in graph.get(e.importer, set()) or violation(e.importer, e.imported) is None
    )
    assert stale == [], "exceptions that no longer apply (remove them):\n" + "\n".join(stale)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_circle() -> None:
    graph = import_graph()
    # An excepted import may run against the order; it closes a circle only when it says so.
    cuts = cut()
    rest = {a: {b for b in targets if (a, b) not in cuts} for a, targets in graph.items()}
    assert find_cycle(rest) is None, "import circle: " + " -> ".join(find_cycle(rest) or [])


@pytest.mark.parametrize(
    ("graph", "circle"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
        ({"a": {"a"}}, True),
    ],
)
def test_find_cycle_finds_circles(graph: dict[str, set[str]], circle: bool) -> None:
    assert (find_cycle(graph) is not None) is circle


def test_violation_flags_upward_and_sideways_imports() -> None:
    assert violation("habitjobs.queue.runtime", "habitjobs.habits.service") is not None
    assert violation("habitjobs.habits.service", "habitjobs.reminders.service") is not None
    assert violation("habitjobs.habits.service", "habitjobs.habits.repository") is None
    assert violation("habitjobs.reminders.service", "habitjobs.habits.models") is None
