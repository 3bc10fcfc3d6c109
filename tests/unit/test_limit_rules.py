"""The pure parts of the limits: rate settings, route classes, header fields, cap errors."""

import pytest
from pydantic import ValidationError

from habitjobs import caps
from habitjobs.api.ratelimit import Decision, Rate, policy_for, rates
from habitjobs.config import Settings
from habitjobs.errors import LimitReached


def test_rates_are_requests_per_seconds() -> None:
    assert Rate.parse("120/60s") == Rate(120, 60)
    settings = Settings(env="test", rate_limit_jobs="3/86400s")
    assert rates(settings)["jobs"] == Rate(3, 86400)
    assert rates(Settings(env="test"))["write"] == Rate(120, 60)


@pytest.mark.parametrize("bad", ["120", "120/60", "0/60s", "120/0s", "-1/60s", "120 / 60s", "abc"])
def test_a_malformed_rate_is_refused_at_start(bad: str) -> None:
    with pytest.raises(ValidationError, match="rate_limit_write"):
        Settings(env="test", rate_limit_write=bad)


def test_route_classes() -> None:
    assert policy_for("GET", "/v1/habits") == "read"
    assert policy_for("POST", "/v1/habits") == "write"
    assert policy_for("DELETE", "/v1/habits/{habit_id}") == "write"
    assert policy_for("PUT", "/v1/devices/{device_id}") == "write"
    assert policy_for("POST", "/v1/sync/push") == "sync"
    assert policy_for("POST", "/v1/me/exports") == "jobs"
    assert policy_for("GET", "/v1/me/exports/{export_id}") == "read"


def test_header_fields_follow_the_ietf_draft() -> None:
    decision = Decision("write", Rate(120, 60), True, remaining=57, retry_after_s=0, full_after_s=2)
    assert decision.headers() == [
        (b"ratelimit-policy", b'"write";q=120;w=60'),
        (b"ratelimit", b'"write";r=57;t=2'),
    ]


def test_a_cap_names_its_limit_and_setting() -> None:
    caps.HABITS.check(499, 500)
    with pytest.raises(LimitReached) as raised:
        caps.HABITS.check(500, 500)
    assert raised.value.http_status == 409
    assert raised.value.code == "limit_reached"
    assert raised.value.details == {"limit": "habits", "max": 500}
    assert "HABITJOBS_MAX_HABITS_PER_USER" in raised.value.message
    assert caps.entity_caps(Settings(env="test")) == {"routine": 50, "habit": 500, "reminder": 200}
