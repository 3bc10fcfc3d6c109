"""Clients generated from the app's OpenAPI document work as generated: a Python client
(openapi-python-client) runs the README's flow against the real API, and TypeScript types
(openapi-typescript, called through openapi-fetch) type-check the same flow with ``tsc --noEmit``.

The generators are pinned: openapi-python-client in tests/clients/python/requirements.txt (its own venv,
.venv/openapi-python-client, which scripts/test installs), the Node packages in
tests/clients/node/package-lock.json (scripts/test runs ``npm ci`` there when node is on PATH).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from habitjobs.api.app import create_app
from habitjobs.config import Settings
from habitjobs.queue.runtime import WorkerRuntime
from habitjobs.resources import Resources
from tests.support.apps import serve_api
from tests.support.users import ApiUser

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
GENERATOR = ROOT / ".venv" / "openapi-python-client" / "bin" / "openapi-python-client"
NODE_DIR = HERE / "node"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(
    NODE is None, reason="node is not on PATH: the TypeScript client check needs Node.js ≥ 20 (and npm ci)"
)


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("openapi") / "openapi.json"
    path.write_text(json.dumps(create_app(Settings(env="test")).openapi()))
    return path


@pytest.fixture(scope="module")
def python_client(document: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the generated ``habitjobs_client`` package and the flow module."""
    assert GENERATOR.exists(), f"{GENERATOR} is missing: scripts/test installs it"
    out = tmp_path_factory.mktemp("python-client")
    generated = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(document),
            "--config",
            str(HERE / "python" / "config.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(out / "habitjobs_client"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    # A warning means a part of the document the generator could not turn into code.
    assert "Warning" not in generated.stdout + generated.stderr, generated.stdout + generated.stderr
    shutil.copy(HERE / "python_flow.py", out / "python_flow.py")
    return out


def test_the_python_client_type_checks_without_any(python_client: Path) -> None:
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--disallow-any-expr",
            "--disallow-any-explicit",
            "--follow-imports=silent",
            "--no-incremental",
            "python_flow.py",
        ],
        cwd=python_client,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_the_python_client_runs_the_readme_flow(
    python_client: Path,
    settings: Settings,
    resources: Resources,
    make_user: Callable[..., Awaitable[ApiUser]],
) -> None:
    user = await make_user()
    runtime = WorkerRuntime(resources, queues=["sync"])
    await runtime.start()
    try:
        async with serve_api(settings, resources) as base_url:
            code = (
                "import sys; sys.path.insert(0, sys.argv[1]); import python_flow; "
                "python_flow.run(sys.argv[2], sys.argv[3])"
            )
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                code,
                str(python_client),
                base_url,
                user.token,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await asyncio.wait_for(process.communicate(), 90)
    finally:
        await runtime.stop(grace_s=5)
    assert process.returncode == 0, output.decode()


def _typescript_project(document: Path, tmp: Path, flow: str) -> subprocess.CompletedProcess[str]:
    """Generate api.d.ts from the document beside ``flow`` and type-check it."""
    for name in ("tsconfig.json",):
        shutil.copy(NODE_DIR / name, tmp / name)
    (tmp / "flow.ts").write_text(flow)
    (tmp / "node_modules").symlink_to(NODE_DIR / "node_modules", target_is_directory=True)
    bin_dir = NODE_DIR / "node_modules" / ".bin"
    env = {**os.environ, "NO_COLOR": "1"}
    generated = subprocess.run(
        [str(bin_dir / "openapi-typescript"), str(document), "-o", str(tmp / "api.d.ts")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    # openapi-typescript warns (⚠) about parts of the document it cannot represent.
    assert "⚠" not in generated.stdout + generated.stderr, generated.stdout + generated.stderr
    return subprocess.run(
        [str(bin_dir / "tsc"), "-p", str(tmp / "tsconfig.json")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


@needs_node
def test_the_typescript_types_check_the_readme_flow(document: Path, tmp_path: Path) -> None:
    assert (NODE_DIR / "node_modules" / ".bin" / "tsc").exists(), "run npm ci in tests/clients/node"
    flow = (NODE_DIR / "flow.ts").read_text()
    checked = _typescript_project(document, tmp_path, flow)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@needs_node
def test_the_typescript_types_refuse_what_the_server_refuses(document: Path, tmp_path: Path) -> None:
    """The check above can fail: a habit kind and a mutation op that do not exist do not type-check."""
    flow = (NODE_DIR / "flow.ts").read_text()
    broken = flow.replace('kind: "check" }', 'kind: "checkbox" }').replace('op: "upsert"', 'op: "upsort"')
    assert broken != flow
    checked = _typescript_project(document, tmp_path, broken)
    assert checked.returncode != 0
    assert '"checkbox"' in checked.stdout, checked.stdout
    assert '"upsort"' in checked.stdout, checked.stdout
