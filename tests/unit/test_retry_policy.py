import random

import pytest

from habitjobs.queue.retry import MIN_DELAY_S, RetryPolicy


def test_exponential_ceiling_doubles_and_caps() -> None:
    policy = RetryPolicy(attempts=10, backoff="exponential", base_delay_s=2, max_delay_s=30)
    assert [policy.ceiling_s(n) for n in range(1, 7)] == [2, 4, 8, 16, 30, 30]


def test_fixed_ceiling_is_constant() -> None:
    policy = RetryPolicy(backoff="fixed", base_delay_s=7, max_delay_s=60)
    assert {policy.ceiling_s(n) for n in range(1, 20)} == {7}


def test_full_jitter_stays_between_floor_and_ceiling_and_spreads() -> None:
    policy = RetryPolicy(attempts=10, base_delay_s=4, max_delay_s=100)
    rng = random.Random(7)
    delays = [policy.delay_s(3, rng=rng) for _ in range(2000)]
    assert min(delays) >= MIN_DELAY_S
    assert max(delays) <= 16
    # Spread over the whole range, not clustered: both halves are well populated.
    assert sum(d < 8.5 for d in delays) > 600
    assert sum(d >= 8.5 for d in delays) > 600


def test_without_jitter_delay_is_the_ceiling() -> None:
    policy = RetryPolicy(attempts=5, base_delay_s=3, max_delay_s=100, jitter=False)
    assert [policy.delay_s(n) for n in (1, 2, 3)] == [3, 6, 12]


def test_retry_after_is_a_lower_bound_even_above_the_cap() -> None:
    policy = RetryPolicy(attempts=5, base_delay_s=1, max_delay_s=10)
    assert policy.delay_s(1, retry_after_s=120) == 120
    assert policy.delay_ms(1, retry_after_s=2.5) >= 2500


def test_huge_attempt_numbers_do_not_overflow() -> None:
    policy = RetryPolicy(attempts=10_000, base_delay_s=1, max_delay_s=60)
    assert policy.ceiling_s(5000) == 60


def test_delay_ms_is_never_zero() -> None:
    # 0 would make bullmq retry immediately, bypassing the delayed set.
    policy = RetryPolicy(attempts=3, backoff="fixed", base_delay_s=0, max_delay_s=0)
    assert policy.delay_ms(1) == 1


def test_exhausted() -> None:
    policy = RetryPolicy(attempts=3)
    assert not policy.exhausted(2)
    assert policy.exhausted(3)


@pytest.mark.parametrize(("attempts", "base", "cap"), [(0, 1, 1), (3, -1, 5), (3, 10, 5)])
def test_invalid_policies_are_refused(attempts: int, base: float, cap: float) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        RetryPolicy(attempts=attempts, base_delay_s=base, max_delay_s=cap)
