"""The per-provider token bucket: steady rate, bursts, halving on 429, Retry-After, recovery."""

import asyncio

import pytest

from habitjobs.push.ratelimit import THROTTLE_WINDOW_S, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_lets_a_burst_through_then_paces_at_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(100, burst=10, clock=clock)
    waits = [bucket.reserve() for _ in range(12)]
    assert all(w == (True, 0.0) for w in waits[:10])
    assert waits[10] == pytest.approx((True, 0.01))
    assert waits[11] == pytest.approx((True, 0.02))


def test_tokens_refill_with_time_up_to_the_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(100, burst=5, clock=clock)
    for _ in range(5):
        bucket.reserve()
    clock.now += 10  # far more than needed
    assert [bucket.reserve()[1] for _ in range(6)] == [0, 0, 0, 0, 0, pytest.approx(0.01)]


def test_a_429_halves_the_rate_and_pauses_until_retry_after() -> None:
    clock = Clock()
    bucket = TokenBucket(1000, clock=clock)
    bucket.throttled(7.0)
    assert bucket.rate_per_s == 500
    reserved, wait = bucket.reserve()
    assert (reserved, wait) == pytest.approx((False, 7.0))
    clock.now += 3
    assert bucket.reserve() == pytest.approx((False, 4.0))


def test_repeated_429s_keep_halving_down_to_a_floor() -> None:
    clock = Clock()
    bucket = TokenBucket(640, min_rate_per_s=50, clock=clock)
    for _ in range(10):
        bucket.throttled(None)
        clock.now += THROTTLE_WINDOW_S
    assert bucket.rate_per_s == 50


def test_a_burst_of_429s_in_one_window_halves_the_rate_once() -> None:
    clock = Clock()
    bucket = TokenBucket(1000, clock=clock)
    for i in range(336):  # hundreds of requests in flight, answered 429 together
        clock.now = 1000.0 + i * (THROTTLE_WINDOW_S / 400)
        bucket.throttled(1.0)
    assert bucket.rate_per_s == 500
    assert bucket.paused_until == pytest.approx(clock.now + 1.0)  # every 429 still extends the pause
    clock.now += THROTTLE_WINDOW_S
    bucket.throttled(1.0)  # a 429 in the next window is a new signal
    assert bucket.rate_per_s == pytest.approx(250)


async def test_a_429_that_arrives_while_a_send_waits_for_its_token_holds_it_back() -> None:
    clock = Clock()
    bucket = TokenBucket(100, burst=1, clock=clock)
    assert await bucket.acquire(max_wait_s=1.0) is None
    waiting = asyncio.create_task(bucket.acquire(max_wait_s=1.0))  # must wait 10 ms for its token
    await asyncio.sleep(0)  # let it take its token and start waiting
    bucket.throttled(5.0)
    assert await waiting == pytest.approx(5.0)


def test_after_a_pause_the_rate_grows_back_linearly_to_the_target() -> None:
    clock = Clock()
    bucket = TokenBucket(1000, recover_s=10, clock=clock)
    bucket.throttled(1.0)
    assert bucket.rate_per_s == 500
    clock.now += 1  # the pause ends: no growth during it
    bucket.reserve()
    assert bucket.rate_per_s == 500
    clock.now += 2  # 2 s x (1000/10) per s
    bucket.reserve()
    assert bucket.rate_per_s == pytest.approx(700)
    clock.now += 100
    bucket.reserve()
    assert bucket.rate_per_s == 1000


def test_giving_back_an_unused_token_restores_it() -> None:
    clock = Clock()
    bucket = TokenBucket(10, burst=1, clock=clock)
    assert bucket.reserve() == (True, 0.0)
    assert bucket.reserve() == pytest.approx((True, 0.1))
    bucket.give_back()
    assert bucket.reserve() == pytest.approx((True, 0.1))


async def test_acquire_waits_briefly_but_reports_long_waits_instead_of_sleeping() -> None:
    clock = Clock()
    bucket = TokenBucket(1000, burst=1, clock=clock)
    assert await bucket.acquire(max_wait_s=1.0) is None
    assert await bucket.acquire(max_wait_s=1.0) is None  # waited 1 ms (real sleep, fake clock)
    bucket.throttled(30.0)
    assert await bucket.acquire(max_wait_s=1.0) == pytest.approx(30.0)


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(0)
