"""deploy/: the Prometheus alert rules and the Grafana dashboard name only metrics the processes export,
and the rules are valid for Prometheus itself (promtool, from the Debian `prometheus` package)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from habitjobs.observability import metrics

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus-alerts.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "habitjobs.json"
# A metric name in PromQL: ours all start with habitjobs_.
NAME = re.compile(r"\bhabitjobs_[a-z0-9_]+\b")
REQUIRED_ALERTS = {
    "HabitjobsJobsFailing": "habitjobs_jobs_failed_total",
    "HabitjobsOldestWaitingJob": "habitjobs_queue_oldest_waiting_seconds",
    "HabitjobsJobsStalled": "habitjobs_jobs_stalled_recovered_total",
    "HabitjobsPushProviderPaused": "habitjobs_push_provider_paused",
    "HabitjobsOutboxBacklog": "habitjobs_outbox_backlog",
    "HabitjobsSyncMergeLag": "habitjobs_sync_merge_lag_seconds_bucket",
}


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    data = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in data["panels"] for target in panel["targets"]]


def test_every_alert_names_only_exported_metrics() -> None:
    exported = metrics.every_name()
    for rule in rules():
        names = set(NAME.findall(rule["expr"]))
        assert names, rule["alert"]
        assert names <= exported, (rule["alert"], names - exported)


def test_the_alerts_cover_what_an_operator_must_hear_about() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    for alert, metric in REQUIRED_ALERTS.items():
        assert metric in by_name[alert]["expr"], alert
        assert by_name[alert]["annotations"]["summary"]


def test_every_dashboard_panel_names_only_exported_metrics() -> None:
    exported = metrics.every_name()
    exprs = dashboard_exprs()
    assert exprs
    used: set[str] = set()
    for expr in exprs:
        names = set(NAME.findall(expr))
        assert names, expr
        assert names <= exported, (expr, names - exported)
        used |= names
    # Every family the processes export has a panel (a new metric gets one).
    families = {m.name for m in metrics.REGISTRY.collect()}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in used}
    assert families <= shown, families - shown


def test_every_metric_the_readme_lists_is_exported() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Operating it", 1)[1].split("\n## ", 1)[0]
    listed = set(NAME.findall(section))
    families = {m.name for m in metrics.REGISTRY.collect()}
    known = metrics.every_name() | families
    assert listed
    assert listed <= known, listed - known
    assert {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in listed} >= families


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; .ci/run does)")
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules())} rules found" in done.stdout
