import pytest
from pydantic import ValidationError

from habitjobs.config import Settings


@pytest.mark.parametrize("secret", ["", "changeme", "secret", "short-but-not-placeholder"])
def test_prod_with_hs256_tokens_refuses_empty_placeholder_or_short_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="HABITJOBS_JWT_SECRET"):
        Settings(env="prod", jwt_hs256=True, jwt_secret=secret)


def test_prod_accepts_a_real_secret() -> None:
    settings = Settings(env="prod", jwt_hs256=True, jwt_secret="x" * 40)
    assert settings.jwt_key == "x" * 40
    assert settings.hs256_enabled


def test_hs256_tokens_are_off_in_prod_unless_enabled_and_on_in_dev_and_test() -> None:
    assert not Settings(env="prod").hs256_enabled  # and then no secret is needed
    assert Settings(env="dev").hs256_enabled
    assert Settings(env="test").hs256_enabled
    assert not Settings(env="dev", jwt_hs256=False).hs256_enabled


def test_identity_providers_from_the_single_settings_and_the_json_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HABITJOBS_ENV", "prod")
    monkeypatch.setenv("HABITJOBS_OIDC_ISSUER", "https://tenant.eu.auth0.com/")
    monkeypatch.setenv("HABITJOBS_OIDC_AUDIENCE", "https://api.example.com, mobile")
    monkeypatch.setenv(
        "HABITJOBS_OIDC_PROVIDERS",
        '[{"issuer": "https://securetoken.google.com/my-app", "audience": "my-app"},'
        ' {"issuer": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Pool", "audience": ["client1"],'
        '  "audience_claim": "client_id", "algorithms": ["RS256"]}]',
    )
    first, firebase, cognito = Settings().identity_providers
    assert (first.issuer, first.audience, first.jwks_url) == (
        "https://tenant.eu.auth0.com/",
        ["https://api.example.com", "mobile"],
        "",
    )
    assert firebase.audience == ["my-app"]
    assert firebase.algorithms == ["RS256", "ES256"]
    assert (cognito.audience_claim, cognito.algorithms) == ("client_id", ["RS256"])


def test_identity_provider_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="go together"):
        Settings(env="dev", oidc_issuer="https://id.example.com")
    with pytest.raises(ValidationError, match="https"):
        Settings(env="prod", oidc_issuer="http://id.example.com", oidc_audience="api")
    with pytest.raises(ValidationError, match="twice"):
        Settings(
            env="dev",
            oidc_issuer="https://id.example.com",
            oidc_audience="api",
            oidc_providers=[{"issuer": "https://id.example.com", "audience": "other"}],
        )
    with pytest.raises(ValidationError, match="JWT_ISSUER"):
        Settings(env="dev", oidc_issuer="habitjobs", oidc_audience="api")
    with pytest.raises(ValidationError, match="algorithms"):
        Settings(
            env="dev",
            oidc_providers=[{"issuer": "https://a.example", "audience": "x", "algorithms": ["HS256"]}],
        )
    with pytest.raises(ValidationError, match="algorithms"):
        Settings(
            env="dev",
            oidc_providers=[{"issuer": "https://a.example", "audience": "x", "algorithms": ["none"]}],
        )


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


def test_push_deliveries_must_be_kept_past_the_window_their_dedupe_key_guards() -> None:
    with pytest.raises(ValidationError, match="HABITJOBS_PUSH_DELIVERY_KEEP_S"):
        Settings(env="dev", push_delivery_keep_s=900, reminder_lookahead_s=60, reminder_tolerance_s=900)
    assert Settings(env="dev", push_delivery_keep_s=3600).push_delivery_keep_s == 3600


def test_analytics_runs_must_be_kept_past_the_planners_lookback() -> None:
    with pytest.raises(ValidationError, match="HABITJOBS_ANALYTICS_RUN_KEEP_S"):
        Settings(env="dev", analytics_run_keep_s=2 * 24 * 3600, analytics_plan_lookback_days=2)
