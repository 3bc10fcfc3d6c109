import pytest
from pydantic import ValidationError

from habitjobs.config import Settings


@pytest.mark.parametrize("secret", ["", "changeme", "secret", "short-but-not-placeholder"])
def test_prod_refuses_empty_placeholder_or_short_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="HABITJOBS_JWT_SECRET"):
        Settings(env="prod", jwt_secret=secret)


def test_prod_accepts_a_real_secret() -> None:
    settings = Settings(env="prod", jwt_secret="x" * 40)
    assert settings.jwt_key == "x" * 40


def test_dev_runs_without_a_secret_using_a_dev_only_key() -> None:
    settings = Settings(env="dev")
    assert settings.jwt_key.startswith("habitjobs-dev-only")


def test_lock_must_outlast_the_stalled_interval() -> None:
    with pytest.raises(ValidationError, match="LOCK_DURATION"):
        Settings(env="dev", lock_duration_ms=1000, stalled_interval_ms=5000)


def test_prefix_may_not_contain_a_colon() -> None:
    with pytest.raises(ValidationError, match="QUEUE_PREFIX"):
        Settings(env="dev", queue_prefix="a:b")


def test_default_recovery_time_is_well_under_a_minute() -> None:
    assert Settings(env="dev").recovery_time_s <= 30


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HABITJOBS_ENV", "dev")
    monkeypatch.setenv("HABITJOBS_QUEUE_PREFIX", "fromenv")
    assert Settings().queue_prefix == "fromenv"


def test_missing_urls_explain_what_to_set() -> None:
    settings = Settings(env="dev")
    with pytest.raises(ValueError, match="HABITJOBS_DATABASE_URL"):
        settings.require_database_url()
    with pytest.raises(ValueError, match="HABITJOBS_REDIS_URL"):
        settings.require_redis_url()
