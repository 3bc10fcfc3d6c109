"""Exit 0 when .venv already holds what `pip install -c constraints.txt -e '.[EXTRA]'` would install.

Run by scripts/_venv.sh (with .venv/bin/python, from the checkout) when its stamp is missing or stale,
so that an unchanged environment is not reinstalled: every requirement of the project, its extra and
their dependencies must be installed, satisfy its specifier and equal its pin in constraints.txt, and
the project must be installed in editable mode from this checkout. Any doubt answers 1 (reinstall).
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
except ImportError:  # a bare venv: nothing is installed yet
    sys.exit(1)

PROJECT = "habitjobs"


def pins() -> dict[str, str]:
    found = {}
    for line in Path("constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[canonicalize_name(name)] = version.strip()
    return found


def wanted(req: Requirement, extras: frozenset[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": extra}) for extra in extras or {""})


def missing(extra: str) -> str | None:
    """What is missing or different, or None when the environment is complete."""
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    optional = project.get("optional-dependencies", {})
    pinned = pins()
    todo: list[tuple[str, frozenset[str]]] = [(r, frozenset()) for r in project["dependencies"]]
    todo += [(r, frozenset()) for r in optional.get(extra, [])]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        text, parent_extras = todo.pop()
        req = Requirement(text)
        if not wanted(req, parent_extras):
            continue
        name = canonicalize_name(req.name)
        if name == PROJECT:  # the project's own extras (dev includes devstack)
            todo += [(r, frozenset()) for e in req.extras for r in optional.get(e, [])]
            continue
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            return f"{name} is not installed"
        if not req.specifier.contains(version, prereleases=True):
            return f"{name} {version} does not satisfy {req}"
        if name in pinned and pinned[name] != version:
            return f"{name} {version} is not the pinned {pinned[name]}"
        todo += [(r, frozenset(req.extras)) for r in metadata.requires(name) or []]
    try:
        import habitjobs
    except ImportError:
        return f"{PROJECT} is not installed"
    if Path(habitjobs.__file__).resolve().parent != (Path("src") / PROJECT).resolve():
        return f"{PROJECT} is not installed in editable mode from this checkout"
    if not (Path(sys.prefix) / "bin" / PROJECT).exists():
        return f"the {PROJECT} command is missing"
    return None


if __name__ == "__main__":
    problem = missing(sys.argv[1])
    if problem:
        print(f"reinstalling: {problem}")
    sys.exit(1 if problem else 0)
