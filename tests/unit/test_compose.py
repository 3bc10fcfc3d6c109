"""docker-compose.yml and Dockerfile, checked without a Docker engine (none runs where the tests run):
the structure a production deployment relies on, and that every name they use exists in the project."""

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from habitjobs.cli.main import app
from habitjobs.config import Settings
from habitjobs.observability import metrics

REPO = Path(__file__).resolve().parents[2]
APP_SERVICES = ("migrate", "api", "worker")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]  # type: ignore[no-any-return]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            pairs.append((instruction.upper(), args.strip()))
    return pairs


def test_the_expected_services_and_named_volumes(compose: dict[str, Any], services: dict[str, Any]) -> None:
    assert set(services) == {"redis", "postgres", *APP_SERVICES}
    declared = set(compose["volumes"])
    used = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    assert used == declared == {"redis-data", "postgres-data"}


def test_redis_keeps_an_append_only_file_and_never_evicts(services: dict[str, Any]) -> None:
    redis = services["redis"]
    args = redis["command"]
    options = {args[i]: args[i + 1] for i in range(1, len(args) - 1, 2)}
    assert options["--appendonly"] == "yes"
    assert options["--maxmemory-policy"] == "noeviction"
    assert "redis-data:/data" in redis["volumes"]
    assert "ping" in redis["healthcheck"]["test"]
    assert "ports" not in redis


def test_postgres_18_data_is_on_a_volume_at_the_path_the_18_image_uses(services: dict[str, Any]) -> None:
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:18")
    # 18+ images keep PGDATA in /var/lib/postgresql/18/docker; a volume at .../data would be ignored.
    assert postgres["volumes"] == ["postgres-data:/var/lib/postgresql"]
    check = postgres["healthcheck"]["test"]
    assert "pg_isready" in check
    # Over TCP: a unix-socket check passes against the image's temporary init server on a fresh volume,
    # before PostgreSQL listens on the network the other services use.
    assert check[check.index("-h") + 1] == "127.0.0.1"
    assert ":?" in postgres["environment"]["POSTGRES_PASSWORD"]  # required, no default password
    assert "ports" not in postgres


def test_migrations_run_once_before_the_api_and_the_workers(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    command = migrate["command"]
    assert command[:2] == ["db", "upgrade"]
    # It waits for PostgreSQL (retrying while unreachable) and is restarted if it fails anyway, but not
    # once it has succeeded (the API and the workers wait for its successful completion).
    assert float(command[command.index("--wait-s") + 1]) >= 30
    assert migrate["restart"].startswith("on-failure")
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"


def test_api_health_check_asks_readyz_on_the_published_port(services: dict[str, Any]) -> None:
    api = services["api"]
    check = " ".join(api["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/readyz" in check
    assert [p.rsplit(":", 1)[1] for p in api["ports"]] == ["8000"]
    # ... which is where the image's API listens.
    env = " ".join(args for ins, args in dockerfile_instructions() if ins == "ENV")
    assert "HABITJOBS_API_PORT=8000" in env
    assert "HABITJOBS_API_HOST=0.0.0.0" in env


def test_worker_health_check_reads_its_readiness_on_its_metrics_port(services: dict[str, Any]) -> None:
    worker = services["worker"]
    check = " ".join(worker["healthcheck"]["test"])
    port = Settings(env="test").worker_metrics_port
    assert f"http://127.0.0.1:{port}/metrics" in check
    assert "habitjobs_worker_ready 1.0" in check
    assert "habitjobs_worker_ready" in metrics.every_name()
    assert [str(p) for p in worker["expose"]] == [str(port)]


def test_workers_scale_and_get_time_to_finish_their_jobs(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert worker["command"] == ["worker"]
    assert worker["deploy"]["replicas"] >= 2
    # Nothing that pins one container: a fixed name or a published port would forbid replicas.
    assert "container_name" not in worker
    assert "ports" not in worker
    grace_s = int(worker["stop_grace_period"].rstrip("s"))
    assert grace_s > Settings(env="test").shutdown_grace_s


def test_app_services_share_one_configuration_of_real_settings(services: dict[str, Any]) -> None:
    envs = [services[name]["environment"] for name in APP_SERVICES]
    assert all(env == envs[0] for env in envs)
    env = envs[0]
    known = {f"HABITJOBS_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= known, set(env) - known  # a misspelt variable would be silently ignored
    assert env["HABITJOBS_ENV"] == "prod"
    assert "@postgres:5432/" in env["HABITJOBS_DATABASE_URL"]
    assert env["HABITJOBS_REDIS_URL"].startswith("redis://redis:6379/")
    assert env["HABITJOBS_JWT_SECRET"].startswith("${HABITJOBS_JWT_SECRET:?")  # required, no default


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_service_commands_are_real_cli_commands(services: dict[str, Any], service: str) -> None:
    result = CliRunner().invoke(app, [*services[service]["command"], "--help"])
    assert result.exit_code == 0, result.output


def test_dockerfile_installs_the_locked_versions_and_runs_unprivileged() -> None:
    instructions = dockerfile_instructions()
    runs = " ".join(args for ins, args in instructions if ins == "RUN")
    assert "--require-hashes --no-deps -r base.lock" in runs
    final_stage = instructions[max(i for i, (ins, _) in enumerate(instructions) if ins == "FROM") :]
    users = [args for ins, args in final_stage if ins == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    assert ("ENTRYPOINT", '["habitjobs"]') in final_stage
    # The base image's Python satisfies the project's requires-python.
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    minimum = tuple(int(p) for p in re.findall(r"\d+", project["requires-python"])[:2])
    for ins, args in instructions:
        if ins == "FROM":
            version = re.search(r"python:(\d+)\.(\d+)", args)
            assert version is not None
            assert (int(version[1]), int(version[2])) >= minimum


def test_every_file_the_dockerfile_copies_exists_and_is_in_the_build_context() -> None:
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = []
    for ins, args in dockerfile_instructions():
        if ins == "COPY" and not args.startswith("--from"):
            sources += shlex.split(args)[:-1]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        parts = Path(source).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        assert not any(fnmatch.fnmatch(p, pattern) for p in prefixes for pattern in ignored), source


def test_a_real_compose_implementation_accepts_the_file_and_its_start_order(tmp_path: Path) -> None:
    """``docker-compose config`` (the Debian package; .ci/run installs it) parses and resolves the file
    as Docker would, without an engine: the health checks and start conditions survive it unchanged."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose; .ci/run does)")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "POSTGRES_PASSWORD": "0123456789abcdef",
        "HABITJOBS_JWT_SECRET": "0" * 64,
    }
    done = subprocess.run(
        [binary, "-f", str(REPO / "docker-compose.yml"), "config"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)["services"]
    assert resolved["postgres"]["healthcheck"]["test"][:4] == ["CMD", "pg_isready", "-h", "127.0.0.1"]
    assert resolved["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        assert resolved[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert resolved[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert resolved[name]["healthcheck"]["test"][0] == "CMD"
    # Without the required secrets it refuses, naming them.
    refused = subprocess.run(
        [binary, "-f", str(REPO / "docker-compose.yml"), "config"],
        cwd=tmp_path,
        env={"PATH": env["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
    assert "POSTGRES_PASSWORD" in refused.stderr + refused.stdout
